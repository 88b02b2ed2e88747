"""The per-domain hot-plug lock: one planner hot-plug of a domain at a time on a host.

The lock is an ``flock`` on ``DIR/<uuid>.lock``. DIR is:

- ``$PLANNER_LOCK_DIR`` if set (tests, unusual hosts);
- ``/run/planner`` for root (``/run`` is root's alone, as for ``/run/libvirt``);
- ``$XDG_RUNTIME_DIR/planner`` (else ``/run/user/<uid>/planner``) for anyone else, so
  planner run by an unprivileged libvirt user serialises that user's hot-plugs. There
  is no fallback to a shared world-writable directory such as ``/tmp``.

Rules, because planner runs as root and the directory may be anyone's (``PLANNER_LOCK_DIR``,
a user's runtime directory):

- DIR is created with mode 0700 by its user. An existing DIR is used only if it is a
  real directory (not a symbolic link), owned by the current user, and not writable by
  group or others; anything else is a one-line error naming the directory and why.
  Root's ``/run/planner`` sits in root's own ``/run``: no other user can create it
  first (as one could ``/run/lock/planner``, ``/run/lock`` being world-writable).
- The lock file is opened ``O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC`` with mode 0600 and
  must be a regular file owned by the current user.
- The wait is bounded (:data:`DEFAULT_TIMEOUT`, 30 s): on timeout :class:`LockTimeout`
  names the PID holding the lock, read from ``/proc/locks``.
- Lock files are never deleted: deleting one while another process waits on it would
  let two hot-plugs run at once. A left-over lock file is harmless: an ``flock`` dies
  with the process that held it, and the PID written in it is only informational.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import LockError, LockTimeout

DEFAULT_TIMEOUT = 30.0  # seconds
SYSTEM_DIR = Path("/run/planner")
ENV_DIR = "PLANNER_LOCK_DIR"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_POLL_FIRST, _POLL_MAX = 0.01, 0.1  # seconds between LOCK_NB attempts


def lock_dir() -> Path:
    """The directory for lock files, by the rules above (not created here)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return SYSTEM_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    if not os.path.isabs(runtime) or not os.path.isdir(runtime):
        raise LockError(
            f"no private directory for the hot-plug lock: {_show(runtime)} does not exist "
            f"(set XDG_RUNTIME_DIR or {ENV_DIR})"
        )
    return Path(runtime) / "planner"


@contextlib.contextmanager
def domain_lock(
    uuid: str, timeout: float | None = DEFAULT_TIMEOUT, directory: os.PathLike | str | None = None
) -> Iterator[None]:
    """Hold the hot-plug lock of domain ``uuid`` for the duration of the ``with`` block.

    Waits at most ``timeout`` seconds (None: for ever; 0: a single try), then raises
    :class:`LockTimeout`. ``directory`` overrides :func:`lock_dir`.
    """
    if not isinstance(uuid, str) or not _NAME.fullmatch(uuid):
        raise LockError(f"invalid domain UUID for a lock file name: {uuid!r}")
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"lock timeout must be >= 0 seconds, not {timeout!r}")
    dpath = Path(directory) if directory is not None else lock_dir()
    dfd = _open_dir(dpath)
    try:
        fd = _open_file(dfd, dpath / f"{uuid}.lock")
    finally:
        os.close(dfd)
    try:
        _acquire(fd, dpath / f"{uuid}.lock", uuid, timeout)
        _record_pid(fd)
        yield
    finally:
        os.close(fd)  # releases the flock


def _open_dir(path: Path) -> int:
    """An fd on the lock directory, created 0700 if missing, refused if anyone else can write."""
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise LockError(f"cannot create lock directory {_show(path)}: {_reason(exc)}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            why = "it is a symbolic link"
        elif exc.errno == errno.ENOTDIR:
            why = "it is not a directory"
        else:
            why = _reason(exc)
        raise LockError(f"cannot use lock directory {_show(path)}: {why}") from None
    try:
        st = os.fstat(fd)
        me = os.geteuid()
        if st.st_uid != me:
            raise LockError(
                f"refusing lock directory {_show(path)}: it is owned by uid {st.st_uid}, "
                f"not uid {me}; remove it"
            )
        if created:
            os.fchmod(fd, 0o700)  # whatever the umask did
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise LockError(
                f"refusing lock directory {_show(path)}: mode {stat.S_IMODE(st.st_mode):04o} lets "
                "group or others write in it; chmod 0700 it"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_file(dfd: int, path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(path.name, flags, 0o600, dir_fd=dfd)
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else _reason(exc)
        raise LockError(f"cannot open lock file {_show(path)}: {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockError(f"refusing lock file {_show(path)}: it is not a regular file")
        if st.st_uid != os.geteuid():
            raise LockError(
                f"refusing lock file {_show(path)}: it is owned by uid {st.st_uid}, "
                f"not uid {os.geteuid()}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _acquire(fd: int, path: Path, uuid: str, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                raise LockError(f"cannot lock {_show(path)}: {_reason(exc)}") from None
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        time.sleep(pause if deadline is None else min(pause, max(deadline - now, 0)))
        pause = min(pause * 2, _POLL_MAX)
    holder = holder_pid(fd)
    who = f"held by {describe_pid(holder)}" if holder else "held by another process"
    raise LockTimeout(
        f"timed out after {timeout:g} s waiting for the hot-plug lock of domain {uuid} "
        f"({_show(path)}, {who}); retry later or wait longer with --lock-timeout",
        str(path),
        holder,
    )


def _record_pid(fd: int) -> None:
    """Write our PID into the lock file we hold: informational, for people and messages."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def holder_pid(fd: int, locks: str = "/proc/locks") -> int | None:
    """The PID holding an flock on the file open at ``fd``: /proc/locks, else the file."""
    st = os.fstat(fd)
    key = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open(locks, encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 6 or fields[1] == "->":  # a waiter, not a holder
                    continue
                # 1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF
                try:
                    pid = int(fields[4])
                    major, minor, inode = fields[5].split(":")
                    found = (int(major, 16), int(minor, 16), int(inode))
                except ValueError:
                    continue
                if found == key and pid > 0 and pid != os.getpid():
                    return pid
    except OSError:
        pass
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(os.pread(fd, 32, 0).split()[0])
        if pid > 0 and pid != os.getpid():
            return pid
    return None


def describe_pid(pid: int) -> str:
    """``PID 4242 (planner)``, with the command name when /proc still has it."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            name = fh.read().strip()
    except OSError:
        return f"PID {pid}"
    name = "".join(c if c.isprintable() else "?" for c in name)  # any process picks its name
    return f"PID {pid} ({name})" if name else f"PID {pid}"


def _show(path) -> str:
    """A path for a one-line message: quoted if it holds a newline or other control."""
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
