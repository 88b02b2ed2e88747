"""Safe output writes (issue 12, "Writes"): ``relayout -o`` / ``-i`` as root.

Device cases run inside ``unshare -m`` with a tmpfs over /dev, so the host's /dev is
never touched; the other user is ``nobody``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "cloudstack-2nic.xml"
GOLDEN = (ROOT / "tests" / "golden" / "cloudstack-2nic.xml").read_bytes()
NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, unshare, runuser)")


def planner(*args, umask: int | None = None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "planner", *map(str, args)],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        **kw,
    )


def one_error_line(proc) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error: "), err
    return lines[0]


def only(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def shared():
    """A sticky world-writable directory nobody can reach (tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="planner-files-"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d)


# --- devices, FIFOs, terminals: written into, never replaced -----------------------------

PRIVATE_DEV = """
mount -t tmpfs -o mode=755 none /dev
mknod -m 666 /dev/null c 1 3
mknod -m 600 /dev/planner-test-blk b 240 7
ln -s /proc/self/fd/1 /dev/stdout
mkdir /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
exec "$PYTHON" -c "$SCRIPT" "$@"
"""

IN_PRIVATE_DEV = textwrap.dedent(
    """
    import json, os, stat, subprocess, sys
    sample, out = sys.argv[1], sys.argv[2]

    def planner(*args, **kw):
        return subprocess.run([sys.executable, "-m", "planner", "relayout", sample, *args],
                              stderr=subprocess.PIPE, timeout=120, **kw)

    def kind(path):
        mode = os.lstat(path).st_mode
        return ("chr" if stat.S_ISCHR(mode) else "lnk" if stat.S_ISLNK(mode)
                else "blk" if stat.S_ISBLK(mode) else "reg" if stat.S_ISREG(mode) else "?")

    res = {}
    p = planner("-o", "/dev/null")
    res["null"] = [p.returncode, kind("/dev/null"), oct(os.stat("/dev/null").st_mode)]
    with open(out, "wb") as fh:
        fh.write(b"kept\\n")
    with open(out, "ab") as fh:
        p = planner("-o", "/dev/stdout", stdout=fh)
    res["stdout"] = [p.returncode, kind("/dev/stdout"), open(out, "rb").read().decode()]
    master, slave = os.openpty()
    name = os.ttyname(slave)
    p = planner("-o", name)
    os.set_blocking(master, False)
    got = b""
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            got += chunk
    except (BlockingIOError, OSError):
        pass
    res["tty"] = [p.returncode, kind(name), len(got)]
    p = planner("-o", "/dev/planner-test-blk")
    res["blk"] = [p.returncode, kind("/dev/planner-test-blk"), p.stderr.decode()]
    print(json.dumps(res))
    """
)


@pytest.fixture(scope="module")
def private_dev():
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -m")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "stdout.txt"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHON": sys.executable,
            "SCRIPT": IN_PRIVATE_DEV,
        }
        proc = subprocess.run(
            ["unshare", "-m", "sh", "-ec", PRIVATE_DEV, "sh", str(SAMPLE), str(out)],
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout)


def test_o_dev_null_writes_into_the_device_and_keeps_it(private_dev):
    rc, kind, mode = private_dev["null"]
    assert (rc, kind) == (0, "chr")
    assert mode == oct(stat.S_IFCHR | 0o666)


def test_o_dev_stdout_writes_to_stdout_appending_and_keeps_the_link(private_dev):
    rc, kind, text = private_dev["stdout"]
    assert (rc, kind) == (0, "lnk")
    assert text == "kept\n" + GOLDEN.decode()  # the >> redirection's append is honoured


def test_o_a_terminal_writes_to_it(private_dev):
    rc, kind, length = private_dev["tty"]
    assert (rc, kind) == (0, "chr")
    assert length >= len(GOLDEN)  # the tty may turn \n into \r\n


def test_o_a_block_device_is_refused_and_kept(private_dev):
    rc, kind, err = private_dev["blk"]
    assert (rc, kind) == (2, "blk")
    assert err.startswith("planner: error: cannot write /dev/planner-test-blk: ")
    assert len(err.splitlines()) == 1


def test_o_a_fifo_writes_into_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the document fits a pipe buffer
    try:
        proc = planner("relayout", SAMPLE, "-o", fifo)
        assert proc.returncode == 0, proc.stderr
        got = b""
        while select.select([reader], [], [], 0)[0]:
            chunk = os.read(reader, 65536)
            if not chunk:
                break
            got += chunk
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == GOLDEN


def test_o_a_directory_is_a_one_line_error(tmp_path):
    proc = planner("relayout", SAMPLE, "-o", tmp_path)
    assert proc.returncode == 2
    assert one_error_line(proc) == f"planner: error: cannot write {tmp_path}: Is a directory"
    assert only(tmp_path) == []


def test_a_path_with_a_newline_still_gives_one_error_line(tmp_path):
    proc = planner("relayout", SAMPLE, "-o", f"{tmp_path}/no/such\ndir/out.xml")
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        f"planner: error: cannot write '{tmp_path}/no/such\\ndir/out.xml': "
        "No such file or directory"
    )


# --- -o '' ---------------------------------------------------------------------------------


def test_o_empty_is_an_error_not_stdout():
    proc = planner("relayout", SAMPLE, "-o", "")
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert "cannot write '': the output path is empty" in one_error_line(proc)


def test_the_library_refuses_an_empty_path():
    from planner.errors import PlannerError
    from planner.files import write_output

    with pytest.raises(PlannerError, match="empty"):
        write_output("", b"x")


# --- symbolic links ------------------------------------------------------------------------


def test_i_on_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.xml"
    real.write_bytes(SAMPLE.read_bytes())
    link = tmp_path / "link.xml"
    link.symlink_to("real.xml")
    proc = planner("relayout", "-i", link)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == "real.xml"
    assert real.read_bytes() == GOLDEN
    assert only(tmp_path) == ["link.xml", "real.xml"]


def test_o_on_a_chain_of_symlinks_into_another_directory_keeps_both_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    real = tmp_path / "b" / "real.xml"
    real.write_bytes(b"old")
    (tmp_path / "b" / "hop").symlink_to("real.xml")
    (tmp_path / "a" / "out.xml").symlink_to("../b/hop")
    proc = planner("relayout", SAMPLE, "-o", tmp_path / "a" / "out.xml")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "out.xml").is_symlink() and (tmp_path / "b" / "hop").is_symlink()
    assert real.read_bytes() == GOLDEN
    assert only(tmp_path / "b") == ["hop", "real.xml"]


def test_a_symlink_loop_is_a_one_line_error(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    proc = planner("relayout", SAMPLE, "-o", tmp_path / "loop")
    assert proc.returncode == 2
    assert "Too many levels of symbolic links" in one_error_line(proc)
    assert (tmp_path / "loop").is_symlink()


@needs_root
def test_root_does_not_follow_another_users_symlink_in_a_sticky_directory(shared, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    subprocess.run(
        ["runuser", "-u", "nobody", "--", "ln", "-s", str(victim), str(shared / "out.xml")],
        check=True,
    )
    proc = planner("relayout", SAMPLE, "-o", shared / "out.xml")
    assert proc.returncode == 2
    assert "symbolic link owned by uid 65534" in one_error_line(proc)
    assert victim.read_bytes() == b"precious"
    assert (shared / "out.xml").is_symlink()


@needs_root
def test_root_follows_its_own_symlink_in_a_sticky_directory(shared):
    (shared / "real.xml").write_bytes(b"old")
    (shared / "out.xml").symlink_to("real.xml")
    proc = planner("relayout", SAMPLE, "-o", shared / "out.xml")
    assert proc.returncode == 0, proc.stderr
    assert (shared / "real.xml").read_bytes() == GOLDEN


@needs_root
def test_root_does_not_follow_another_users_symlinked_directory(shared, tmp_path):
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir()
    (victim_dir / "passwd").write_bytes(b"precious")
    subprocess.run(
        ["runuser", "-u", "nobody", "--", "ln", "-s", str(victim_dir), str(shared / "d")],
        check=True,
    )
    proc = planner("relayout", SAMPLE, "-o", shared / "d" / "passwd")
    assert proc.returncode == 2
    assert "symbolic link owned by uid 65534" in one_error_line(proc)
    assert (victim_dir / "passwd").read_bytes() == b"precious"
    assert only(victim_dir) == ["passwd"]


def test_dot_dot_after_a_symlink_is_resolved_as_the_kernel_does(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "link").symlink_to(tmp_path / "a" / "deep")
    proc = planner("relayout", SAMPLE, "-o", tmp_path / "b" / "link" / ".." / "out.xml")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "out.xml").read_bytes() == GOLDEN  # not b/out.xml
    assert only(tmp_path / "b") == ["link"]


# --- owner, group, mode, umask -----------------------------------------------------------


@needs_root
def test_i_keeps_another_users_owner_group_and_mode(tmp_path):
    target = tmp_path / "dom.xml"
    target.write_bytes(SAMPLE.read_bytes())
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o640)
    proc = planner("relayout", "-i", target)
    assert proc.returncode == 0, proc.stderr
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    assert target.read_bytes() == GOLDEN


@needs_root
def test_i_keeps_a_setgid_bit_on_its_own_group(tmp_path):
    target = tmp_path / "dom.xml"
    target.write_bytes(SAMPLE.read_bytes())
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o2770)  # after chown, which would clear it
    proc = planner("relayout", "-i", target)
    assert proc.returncode == 0, proc.stderr
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o2770)


@needs_root
def test_a_new_file_in_a_setgid_directory_takes_the_directory_group(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    os.chown(d, 0, NOBODY)
    d.chmod(0o2775)
    proc = planner("relayout", SAMPLE, "-o", d / "out.xml", umask=0o002)
    assert proc.returncode == 0, proc.stderr
    st = (d / "out.xml").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, NOBODY, 0o664)


@pytest.mark.parametrize("umask", [0o077, 0o027, 0o022, 0o000])
def test_a_new_file_honours_the_umask(tmp_path, umask):
    target = tmp_path / "out.xml"
    proc = planner("relayout", SAMPLE, "-o", target, umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert target.read_bytes() == GOLDEN


def test_hard_links_are_broken_like_sed_i_does(tmp_path):
    """Documented: the name given is replaced; other links keep the old content."""
    target = tmp_path / "dom.xml"
    target.write_bytes(SAMPLE.read_bytes())
    other = tmp_path / "other.xml"
    os.link(target, other)
    proc = planner("relayout", "-i", target)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == GOLDEN
    assert other.read_bytes() == SAMPLE.read_bytes()
    assert target.stat().st_nlink == other.stat().st_nlink == 1


# --- the temporary file --------------------------------------------------------------------


def test_a_planted_file_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch):
    from planner import files

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / ".out.xml.planner-aaaaaaaa.tmp").symlink_to(victim)
    tokens = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(tokens))
    files.write_output(tmp_path / "out.xml", b"new")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out.xml").read_bytes() == b"new"
    assert only(tmp_path) == [".out.xml.planner-aaaaaaaa.tmp", "out.xml", "victim"]


def test_the_temporary_file_is_created_private_beside_the_target(tmp_path, monkeypatch):
    from planner import files

    seen = []
    real = files._write_all

    def spy(fd, data):
        st = os.fstat(fd)
        seen.append((stat.S_IMODE(st.st_mode), sorted(only(tmp_path))))
        real(fd, data)

    monkeypatch.setattr(files, "_write_all", spy)
    target = tmp_path / "out.xml"
    target.write_bytes(b"old")
    target.chmod(0o644)
    files.write_output(target, b"new")
    [(mode, names)] = seen
    assert mode == 0o600
    assert len(names) == 2 and names[1] == "out.xml"
    assert names[0].startswith(".out.xml.planner-") and names[0].endswith(".tmp")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_rename_leaves_the_original_and_no_temporary_file(tmp_path, monkeypatch):
    from planner import files

    target = tmp_path / "dom.xml"
    target.write_bytes(b"old")

    def refuse(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "rename", refuse)
    with pytest.raises(files.WriteError, match=r"^cannot write .*: No space left on device$"):
        files.write_output(target, b"new")
    assert target.read_bytes() == b"old"
    assert only(tmp_path) == ["dom.xml"]


# A planner -i whose fsync of the temporary file stops mid-write, so a signal lands there.
SLOW_WRITE = textwrap.dedent(
    """
    import os, runpy, stat, sys, time
    real = os.fsync
    def fsync(fd):
        real(fd)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            st = os.fstat(fd)
            print("writing", oct(stat.S_IMODE(st.st_mode)), st.st_size, flush=True)
            time.sleep(60)
    os.fsync = fsync
    sys.argv = ["planner", "relayout", "-i", sys.argv[1]]
    runpy.run_module("planner", run_name="__main__")
    """
)


def big_domain() -> bytes:
    """The sample with an 8 MiB comment: a large document, still laid out normally."""
    text = SAMPLE.read_bytes()
    at = text.index(b"<devices>")
    return text[:at] + b"<!-- " + b"x" * (8 << 20) + b" -->\n  " + text[at:]


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_write_removes_the_temporary_file_and_keeps_the_original(tmp_path, signo):
    target = tmp_path / "dom.xml"
    original = big_domain()
    target.write_bytes(original)
    target.chmod(0o640)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITE, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline().decode().split()
        assert line[:1] == ["writing"], proc.stderr.read()
        assert line[1] == "0o640"  # the original's mode, given before the fsync
        assert int(line[2]) > 8 << 20
        temps = [n for n in only(tmp_path) if n != "dom.xml"]
        assert len(temps) == 1 and temps[0].startswith(".dom.xml.") and temps[0].endswith(".tmp")
        proc.send_signal(signo)
        assert proc.wait(timeout=60) == -signo  # died of the signal: 128+signo to a shell
    finally:
        proc.kill()
        proc.wait()
    assert only(tmp_path) == ["dom.xml"]
    assert target.read_bytes() == original


def test_an_ignored_sighup_stays_ignored(tmp_path):
    """nohup planner ...: the write completes, and SIGHUP is still ignored afterwards."""
    from planner import files

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        files.write_output(tmp_path / "out.xml", b"data")
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)
    assert (tmp_path / "out.xml").read_bytes() == b"data"


def test_handlers_are_restored_after_a_write(tmp_path):
    from planner import files

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    files.write_output(tmp_path / "out.xml", "é")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
    assert (tmp_path / "out.xml").read_bytes() == "é".encode()
