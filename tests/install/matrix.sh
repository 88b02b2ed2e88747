#!/usr/bin/env bash
# The install matrix: build the sdist and the wheel once, then install planner the five
# ordinary ways and run, in each, with the installed `planner`:
#   planner --version
#   planner relayout samples/cloudstack-2nic.xml
#   planner hotplug --dry-run --network default DOMAIN     (the real libvirtd)
#
#   venv     pip install WHEEL            in a clean venv
#   user     pip install --user WHEEL     base interpreter, HOME and PYTHONUSERBASE in a temp dir
#   prefix   pip install --prefix DIR     clean venv's pip; planner run with PYTHONPATH=DIR/...
#   pipx     pipx install WHEEL           PIPX_HOME and PIPX_BIN_DIR in a temp dir
#   editable pip install -e SRC           a clean venv, SRC = the unpacked sdist
#
# The wheel is built by `python -m build` from the sdist (so the sdist is proven complete),
# from a copy of the repository's files. The sdist must hold tests, samples and templates.
# DOMAIN is a throwaway laid-out `<domain type='qemu'>` defined here under a unique
# name and undefined on exit. pip's cache is shared (libvirt-python compiles once).
#
# Usage: tests/install/matrix.sh [WORKDIR]     (WORKDIR is kept; default: a temp dir)
# Environment: PYTHON (default python3), PLANNER_TEST_URI (default qemu:///system),
#              MATRIX (default "venv user prefix pipx editable").
# Prints one "matrix:" line per command with its first line of output, and the timings.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-python3}
URI=${PLANNER_TEST_URI:-qemu:///system}
MATRIX=${MATRIX:-venv user prefix pipx editable}
SAMPLE=samples/cloudstack-2nic.xml

if [ $# -ge 1 ]; then
  WORK=$(mkdir -p "$1" && cd "$1" && pwd) KEEP=1
else
  WORK=$(mktemp -d /tmp/planner-matrix.XXXXXX) KEEP=0
fi
DOMAIN="planner-test-matrix-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
cleanup() {
  virsh -q -c "$URI" undefine "$DOMAIN" >/dev/null 2>&1 || true
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# A base interpreter (a venv's python cannot do --user), and pip's shared cache.
BASE_PY=$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
PIP_CACHE_DIR=${PIP_CACHE_DIR:-$("$BASE_PY" -m pip cache dir)}
export PIP_CACHE_DIR PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 LIBVIRT_DEFAULT_URI="$URI"
unset PYTHONPATH PYTHONHOME PYTHONNOUSERSITE PIP_USER PIP_PREFIX PIP_TARGET VIRTUAL_ENV

say() { printf 'matrix: %s\n' "$*"; }
fail() { printf 'matrix: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
quiet() {  # run a set-up command; show its output only if it fails
  local log="$WORK/last.log"
  "$@" >"$log" 2>&1 || { tail -n 40 "$log" >&2; fail "$*"; }
}

T0=$(now)

# --- the source tree, the sdist and the wheel -----------------------------------------------
SRC="$WORK/src"
rm -rf "$SRC" "$WORK/dist" && mkdir -p "$SRC"
# what a clone holds: git's files (tracked, and new ones not ignored), else the whole tree
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard) |
    while IFS= read -r -d '' f; do
      [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ] || continue  # deleted, not yet committed
      mkdir -p "$SRC/$(dirname "$f")" && cp -P "$REPO/$f" "$SRC/$f"
    done
else
  cp -a "$REPO/." "$SRC/"
fi

# build and pipx: from the test extra if PYTHON has them, else in a venv of their own
if "$PYTHON" -c 'import build, pipx' 2>/dev/null; then
  TOOLS_PY=$PYTHON
else
  TOOLS_PY="$WORK/tools/bin/python"
  [ -x "$TOOLS_PY" ] && "$TOOLS_PY" -c 'import build, pipx' 2>/dev/null ||
    { quiet "$BASE_PY" -m venv "$WORK/tools" && quiet "$TOOLS_PY" -m pip install build pipx; }
fi
t=$(now)
quiet "$TOOLS_PY" -m build --outdir "$WORK/dist" "$SRC"
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
say "built $(basename "$SDIST") and $(basename "$WHEEL") in $(since "$t") s"

listing=$(tar tzf "$SDIST")
for f in tests/test_corpus.py tests/corpus/SOURCES.md tests/corpus/libvirt90-assigned/libvirt-pci-many.xml \
         tests/host-setup.sh tests/install/matrix.sh samples/cloudstack-2nic.xml templates/nic.xml.j2; do
  grep -q "^[^/]*/$f\$" <<<"$listing" || fail "the sdist lacks $f"
done
n_corpus=$(grep -c '^[^/]*/tests/corpus/.*\.xml$' <<<"$listing" || true)
[ "$n_corpus" -ge 130 ] || fail "the sdist holds $n_corpus corpus files"
wheel_listing=$("$BASE_PY" -c 'import sys, zipfile; print(*zipfile.ZipFile(sys.argv[1]).namelist(), sep="\n")' "$WHEEL")
grep -qx 'planner/templates/nic.xml.j2' <<<"$wheel_listing" || fail "the wheel lacks planner/templates/nic.xml.j2"
! grep -q '\.data/data/' <<<"$wheel_listing" || fail "the wheel still installs data-files"
say "sdist: tests ($n_corpus corpus files), samples, templates; wheel: planner/templates/nic.xml.j2"

UNPACKED="$WORK/sdist"
rm -rf "$UNPACKED" && mkdir -p "$UNPACKED" && tar xzf "$SDIST" -C "$UNPACKED" --strip-components=1

# --- the throwaway laid-out domain ----------------------------------------------------------
"$BASE_PY" - "$SRC/$SAMPLE" "$DOMAIN" >"$WORK/domain.xml" <<'PY'
import re, sys
xml = open(sys.argv[1], encoding="utf-8").read()
xml = xml.replace("<domain type='kvm'>", "<domain type='qemu'>", 1)
xml = re.sub(r"<name>[^<]*</name>", f"<name>{sys.argv[2]}</name>", xml, count=1)
sys.stdout.write(re.sub(r"\s*<uuid>[^<]*</uuid>", "", xml, count=1))
PY
(cd "$SRC" && PYTHONPATH="$SRC" "$BASE_PY" -m planner relayout "$WORK/domain.xml" -o "$WORK/laid-out.xml")
quiet virsh -c "$URI" define "$WORK/laid-out.xml"
say "defined $DOMAIN (laid out, type qemu) on $URI"

# --- the three commands against one install ------------------------------------------------
# check NAME WHERE CMD...: CMD runs planner; WHERE is the directory planner must come from.
check() {
  local name=$1 where=$2 t out first
  shift 2
  t=$(now)
  out=$(cd "$UNPACKED" && "$@" --version 2>&1) || fail "$name: planner --version: $out"
  first=${out%%$'\n'*}
  [[ $first == "planner "*"($where/"* ]] || fail "$name: planner runs from elsewhere: $first"
  grep -q "^libvirtd [0-9]" <<<"$out" || fail "$name: no libvirtd line: $out"
  say "$name | planner --version | $first | $(grep '^libvirtd' <<<"$out")"

  out=$(cd "$UNPACKED" && "$@" relayout "$SAMPLE" 2>&1) || fail "$name: relayout: $out"
  grep -q "<planner:layout " <<<"$out" || fail "$name: relayout wrote no layout"
  say "$name | planner relayout $SAMPLE | ${out%%$'\n'*} ($(wc -l <<<"$out") lines, layout recorded)"

  out=$(cd "$UNPACKED" && "$@" hotplug -c "$URI" --dry-run --network default "$DOMAIN" 2>&1) ||
    fail "$name: hotplug --dry-run: $out"
  grep -q "<source network=.default.\\s*/>" <<<"$out" || fail "$name: hotplug rendered no NIC: $out"
  grep -q "<address type=.pci.*slot=.0x05." <<<"$out" || fail "$name: hotplug chose no slot 5: $out"
  say "$name | planner hotplug --dry-run --network default $DOMAIN | ${out%%$'\n'*} ... $(grep -o '<address[^>]*>' <<<"$out")"
  say "$name | install $(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.1f", b - a }') s, commands $(since "$t") s"
}

for kind in $MATRIX; do
  t0=$(now)
  dir="$WORK/$kind"
  rm -rf "$dir" && mkdir -p "$dir"
  case $kind in
    venv)
      quiet "$BASE_PY" -m venv "$dir/venv"
      quiet "$dir/venv/bin/pip" install "$WHEEL[libvirt]"
      check venv "$dir/venv/lib" "$dir/venv/bin/planner"
      ;;
    user)
      # the base interpreter; a fresh HOME and user base hold all that --user writes
      quiet env HOME="$dir/home" PYTHONUSERBASE="$dir/userbase" \
        "$BASE_PY" -m pip install --user "$WHEEL[libvirt]"
      check user "$dir/userbase/lib" env HOME="$dir/home" PYTHONUSERBASE="$dir/userbase" \
        "$dir/userbase/bin/planner"
      ;;
    prefix)
      quiet "$BASE_PY" -m venv "$dir/venv"
      quiet "$dir/venv/bin/pip" install --prefix "$dir/prefix" "$WHEEL[libvirt]"
      site=$("$dir/venv/bin/python" -c 'import sys; print("lib/python%d.%d/site-packages" % sys.version_info[:2])')
      [ ! -e "$dir/prefix/share/planner" ] || fail "prefix: data-files installed in share/planner"
      check prefix "$dir/prefix/$site" env PYTHONPATH="$dir/prefix/$site" "$dir/prefix/bin/planner"
      ;;
    pipx)
      quiet env PIPX_HOME="$dir/pipx" PIPX_BIN_DIR="$dir/bin" PIPX_MAN_DIR="$dir/man" \
        "$TOOLS_PY" -m pipx install --python "$BASE_PY" "$WHEEL[libvirt]"
      check pipx "$dir/pipx/venvs" "$dir/bin/planner"
      ;;
    editable)
      quiet "$BASE_PY" -m venv "$dir/venv"
      quiet "$dir/venv/bin/pip" install -e "$UNPACKED[libvirt]"
      check editable "$UNPACKED" "$dir/venv/bin/planner"
      ;;
    *) fail "unknown install kind: $kind" ;;
  esac
done

virsh -q -c "$URI" undefine "$DOMAIN" >/dev/null
virsh -q -c "$URI" dominfo "$DOMAIN" >/dev/null 2>&1 && fail "$DOMAIN is still defined"
say "undefined $DOMAIN"
say "all passed: $MATRIX in $(since "$T0") s"
