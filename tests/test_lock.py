"""The per-domain hot-plug lock (issue 12, "Lock"): nobody can hijack or stall it.

The attacker is ``nobody`` (``runuser``). Tests use a private lock root passed by
parameter, except the default-path tests, which run in ``unshare -m`` with a tmpfs
over /run so the host's real lock directory is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid as uuidlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runuser, unshare)")


def as_nobody(*cmd: str, **kw):
    return subprocess.run(["runuser", "-u", "nobody", "--", *cmd], **kw)


def stop(proc: subprocess.Popen) -> None:
    """Kill a lock holder we started, with the children it forked (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def uuid() -> str:
    return str(uuidlib.uuid4())


@pytest.fixture
def shared():
    """A sticky world-writable directory, like /run/lock, that nobody can reach."""
    d = Path(tempfile.mkdtemp(prefix="planner-lock-"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d)


# Take the lock in a child process, so a lock that waits for ever fails the test
# instead of hanging it. Prints {"ok": elapsed} or {"error": class, "message", "code"}.
TAKE = textwrap.dedent(
    """
    import json, os, sys, time
    from planner.cli import exit_code
    from planner.lock import domain_lock
    uuid, directory, timeout = sys.argv[1], sys.argv[2] or None, float(sys.argv[3])
    start = time.monotonic()
    try:
        with domain_lock(uuid, timeout=timeout, directory=directory):
            print(json.dumps({"ok": time.monotonic() - start}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                          "code": exit_code(exc),
                          "elapsed": time.monotonic() - start}))
    """
)


def take(uuid: str, directory, timeout: float = 5.0, env: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", TAKE, uuid, str(directory or ""), str(timeout)],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,  # a hang guard, not a timing
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


# --- the directory -----------------------------------------------------------------------


def test_a_new_lock_directory_is_0700_even_under_umask_000(tmp_path, uuid):
    from planner.lock import domain_lock

    d = tmp_path / "locks"
    old = os.umask(0)
    try:
        with domain_lock(uuid, directory=d):
            pass
    finally:
        os.umask(old)
    st = d.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o700)
    lock = (d / f"{uuid}.lock").lstat()
    assert stat.S_ISREG(lock.st_mode) and stat.S_IMODE(lock.st_mode) == 0o600


def test_a_directory_another_user_made_with_a_planted_symlink_is_refused(shared, uuid, tmp_path):
    d, victim = shared / "planner", tmp_path / "created-by-root"
    as_nobody("mkdir", "-m", "777", str(d), check=True)
    as_nobody("ln", "-s", str(victim), str(d / f"{uuid}.lock"), check=True)
    got = take(uuid, d)
    assert got["error"] == "LockError", got
    assert got["message"] == (
        f"refusing lock directory {d}: it is owned by uid {NOBODY}, not uid 0; remove it"
    )
    assert not victim.exists() and not victim.is_symlink()


def test_a_squatter_holding_the_lock_cannot_stall_root(shared, uuid):
    d = shared / "planner"
    as_nobody("mkdir", "-m", "777", str(d), check=True)
    holder = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", "flock", str(d / f"{uuid}.lock"), "sleep", "60"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (d / f"{uuid}.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        got = take(uuid, d, timeout=3600)  # refused at once, long before any timeout
        assert got["error"] == "LockError" and "owned by uid 65534" in got["message"], got
    finally:
        stop(holder)


def test_a_root_owned_directory_writable_by_others_is_refused(shared, uuid):
    d = shared / "planner"
    d.mkdir()
    d.chmod(0o1777)
    got = take(uuid, d)
    assert got["error"] == "LockError", got
    assert got["message"] == (
        f"refusing lock directory {d}: mode 1777 lets group or others write in it; chmod 0700 it"
    )
    assert list(d.iterdir()) == []


def test_a_symlinked_lock_directory_is_refused(shared, uuid, tmp_path):
    real = tmp_path / "root-only"
    real.mkdir(mode=0o700)
    as_nobody("ln", "-s", str(real), str(shared / "planner"), check=True)
    got = take(uuid, shared / "planner")
    assert got["error"] == "LockError", got
    assert got["message"] == f"cannot use lock directory {shared}/planner: it is a symbolic link"
    assert list(real.iterdir()) == []


def test_no_fallback_to_a_shared_temporary_directory(tmp_path, uuid):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    got = take(uuid, blocker)
    assert got["error"] == "LockError", got
    assert str(blocker) in got["message"]
    assert not (Path(tempfile.gettempdir()) / "planner-locks" / f"{uuid}.lock").exists()


# --- the lock file -----------------------------------------------------------------------


def test_a_symlink_at_the_lock_file_is_refused_and_not_followed(tmp_path, uuid):
    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    (d / f"{uuid}.lock").symlink_to(victim)
    got = take(uuid, d)
    assert got["error"] == "LockError", got
    assert got["message"] == f"cannot open lock file {d}/{uuid}.lock: it is a symbolic link"
    assert not victim.exists()


def test_a_lock_file_owned_by_another_user_is_refused(tmp_path, uuid):
    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    (d / f"{uuid}.lock").write_text("")
    os.chown(d / f"{uuid}.lock", NOBODY, NOBODY)
    got = take(uuid, d)
    assert got["error"] == "LockError", got
    assert "owned by uid 65534" in got["message"]


def test_other_users_cannot_open_the_lock_file(tmp_path, uuid):
    from planner.lock import domain_lock

    d = Path(tempfile.mkdtemp(prefix="planner-lock-"))
    try:
        d.chmod(0o755)  # reachable, so only the lock directory's own rules keep nobody out
        with domain_lock(uuid, directory=d / "planner"):
            pass
        proc = as_nobody("flock", "-n", str(d / "planner" / f"{uuid}.lock"), "true")
        assert proc.returncode != 0
    finally:
        shutil.rmtree(d)


def test_a_stale_lock_file_is_harmless(tmp_path, uuid):
    from planner.lock import domain_lock

    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    (d / f"{uuid}.lock").write_text("999999999\n")  # left by a process long gone
    (d / f"{uuid}.lock").chmod(0o600)
    with domain_lock(uuid, timeout=0, directory=d):
        assert (d / f"{uuid}.lock").read_text() == f"{os.getpid()}\n"
    assert (d / f"{uuid}.lock").exists()  # never deleted: that would race with waiters


@pytest.mark.parametrize("bad", ["", "../etc/x", "a/b", ".hidden", "x" * 200, "a\nb"])
def test_a_uuid_that_is_not_a_plain_name_is_refused(tmp_path, bad):
    from planner.lock import LockError, domain_lock

    with pytest.raises(LockError), domain_lock(bad, directory=tmp_path / "locks"):
        pass
    assert not (tmp_path / "locks").exists()


# --- the bounded wait ----------------------------------------------------------------------


def test_a_held_lock_times_out_naming_the_holder(tmp_path, uuid):
    from planner.lock import domain_lock

    d = tmp_path / "locks"
    with domain_lock(uuid, directory=d):
        pass
    holder = subprocess.Popen(
        ["flock", str(d / f"{uuid}.lock"), "sh", "-c", "echo locked; exec sleep 60"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        got = take(uuid, d, timeout=0.5)
    finally:
        stop(holder)
    assert got["error"] == "LockTimeout", got
    assert got["code"] == 75
    assert got["elapsed"] >= 0.5
    assert got["message"] == (
        f"timed out after 0.5 s waiting for the hot-plug lock of domain {uuid} "
        f"({d}/{uuid}.lock, held by PID {holder.pid} (flock)); "
        "retry later or wait longer with --lock-timeout"
    )


def test_the_lock_is_taken_once_the_holder_lets_go(tmp_path, uuid):
    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    holder = subprocess.Popen(
        ["flock", str(d / f"{uuid}.lock"), "sh", "-c", "echo locked; exec sleep 0.3"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        got = take(uuid, d, timeout=30)
    finally:
        stop(holder)
    assert "ok" in got, got


def test_two_holders_in_one_process_exclude_each_other(tmp_path, uuid):
    from planner.lock import LockTimeout, domain_lock

    with (
        domain_lock(uuid, directory=tmp_path),
        pytest.raises(LockTimeout),
        domain_lock(uuid, timeout=0, directory=tmp_path),
    ):
        pass


def test_holder_pid_reads_proc_locks_and_skips_waiters(tmp_path):
    from planner.lock import holder_pid

    f = tmp_path / "x.lock"
    f.write_text("")
    fd = os.open(f, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        locks = tmp_path / "locks"
        locks.write_text(
            f"1: POSIX  ADVISORY  WRITE 111 00:01:2 0 EOF\n"
            f"2: FLOCK  ADVISORY  WRITE 4242 {dev} 0 EOF\n"
            f"2: -> FLOCK  ADVISORY  WRITE 5353 {dev} 0 EOF\n"
        )
        assert holder_pid(fd, str(locks)) == 4242
        locks.write_text(f"2: -> FLOCK  ADVISORY  WRITE 5353 {dev} 0 EOF\n")
        assert holder_pid(fd, str(locks)) is None
    finally:
        os.close(fd)


# --- the default directories ---------------------------------------------------------------

# In a private mount namespace with an empty tmpfs over /run (root's, 0755, as on the
# host) and a world-writable /run/lock in it: what root does with /run/planner itself,
# and what an unprivileged user can no longer do to it.
DEFAULT_PATH = """
mount -t tmpfs -o mode=0755 none /run
mkdir -m 1777 /run/lock
exec "$PYTHON" -c "$SCRIPT"
"""

IN_PRIVATE_RUN = textwrap.dedent(
    """
    import json, os, stat, subprocess
    from planner.lock import domain_lock, lock_dir
    os.environ.pop("PLANNER_LOCK_DIR", None)
    res = {"dir": str(lock_dir())}
    os.umask(0)
    with domain_lock("planner-test-default"):
        d = os.lstat("/run/planner")
        f = os.lstat("/run/planner/planner-test-default.lock")
        res["made"] = [d.st_uid, oct(d.st_mode), f.st_uid, oct(f.st_mode)]
    res["in_run_lock"] = os.listdir("/run/lock")
    subprocess.run(["rm", "-r", "/run/planner"], check=True)
    squat = subprocess.run(["runuser", "-u", "nobody", "--", "mkdir", "-m", "777",
                            "/run/planner"], capture_output=True, text=True)
    res["squat_rc"] = squat.returncode
    with domain_lock("planner-test-default", timeout=1):
        res["after_squat"] = oct(os.lstat("/run/planner").st_mode)
    print(json.dumps(res))
    """
)


def test_root_locks_in_run_planner_which_nobody_else_can_create():
    """/run is root's (0755): the directory cannot be squatted, unlike /run/lock/planner."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": sys.executable}
    env["SCRIPT"] = IN_PRIVATE_RUN
    env.pop("PLANNER_LOCK_DIR", None)
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-ec", DEFAULT_PATH], capture_output=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    res = json.loads(proc.stdout)
    assert res["dir"] == "/run/planner"
    assert res["made"] == [0, oct(stat.S_IFDIR | 0o700), 0, oct(stat.S_IFREG | 0o600)]
    assert res["in_run_lock"] == []  # the world-writable /run/lock is not used
    assert res["squat_rc"] != 0  # nobody cannot create /run/planner
    assert res["after_squat"] == oct(stat.S_IFDIR | 0o700)


def test_an_unprivileged_user_locks_in_its_runtime_directory(uuid):
    """nobody runs planner.lock from a copy it can read, with the system Python."""
    base = Path(tempfile.mkdtemp(prefix="planner-lock-"))
    try:
        base.chmod(0o755)
        pkg = base / "planner"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for name in ("errors.py", "lock.py"):
            shutil.copy(ROOT / "planner" / name, pkg / name)
        run = base / "run"
        run.mkdir(mode=0o700)
        os.chown(run, NOBODY, NOBODY)
        code = (
            "import sys; from planner.lock import domain_lock, lock_dir\n"
            "print(lock_dir())\n"
            f"with domain_lock({uuid!r}): pass\n"
        )

        def nobody_python(runtime) -> subprocess.CompletedProcess:
            env = ["env", "-i", f"PYTHONPATH={base}", "PATH=/usr/bin:/bin"]
            env.append(f"XDG_RUNTIME_DIR={runtime}")
            cmd = [*env, "/usr/bin/python3", "-c", code]
            return as_nobody(*cmd, capture_output=True, cwd="/")

        proc = nobody_python(run)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode().strip() == f"{run}/planner"
        st = (run / "planner").stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o700)
        assert (run / "planner" / f"{uuid}.lock").stat().st_uid == NOBODY
        # No runtime directory at all: an error, never /tmp.
        proc = nobody_python("/nonexistent")
        assert proc.returncode != 0
        assert "no private directory for the hot-plug lock: /nonexistent" in proc.stderr.decode()
        assert not (Path(tempfile.gettempdir()) / "planner-locks" / f"{uuid}.lock").exists()
    finally:
        shutil.rmtree(base)
