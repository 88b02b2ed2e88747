"""Safe output writes: ``relayout -o FILE`` and ``relayout -i FILE``.

planner runs as root, so writing a result must never clobber what the user did not
name, nor leave a half-written or world-readable file behind. :func:`write_output`
follows these rules:

- **Not a regular file.** An existing character device, FIFO or terminal
  (``/dev/null``, ``/dev/tty``, a named pipe) is written into directly, as a shell's
  ``>`` would: it is never replaced. ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``
  and ``/proc/self/fd/N`` write to planner's own open descriptor N (as bash does), so
  ``-o /dev/stdout >> log`` appends. A directory, socket or block device is refused.
- **Symbolic links** are followed: the file the link resolves to is replaced
  atomically and the link itself stays a link. A link in a sticky world-writable
  directory (``/tmp``), at the end of the path or in the middle, is followed only if it
  belongs to the caller or to the directory's owner: the kernel's ``protected_symlinks``
  rule, applied whatever that sysctl says, so nobody can point root's output at
  ``/etc/passwd``. The path is walked one component at a time, each opened
  ``O_NOFOLLOW`` relative to the last, so a link swapped in meanwhile is not followed.
- **Regular files** are replaced atomically: the data goes to a temporary file beside
  the target (``.NAME.planner-XXXXXXXX.tmp``, created ``O_EXCL|O_NOFOLLOW|O_CLOEXEC``
  with mode 0600), gets the owner, group and mode of the file it replaces (``fchown``
  then ``fchmod``, so a setgid bit survives), is fsync'd, is renamed over the target,
  and the directory is fsync'd. A new file gets ``0666 & ~umask``, like any other tool.
  Only root can keep another user's ownership; an unprivileged caller keeps the group
  where it may, as ``sed -i`` does. ACLs and SELinux labels are not copied.
- **Hard links.** Replacing a file gives the name a new inode, so other hard links to
  the old file keep the old content (``sed -i`` does the same). Edit through the name
  you want changed.
- **Temporary files** are removed on every exit path: errors, KeyboardInterrupt, and
  SIGTERM/SIGHUP, which are caught for the duration of the write (unless ignored), the
  temporary file removed, and the signal re-raised under the previous handler: with
  the default one the process dies of it (exit status 128+signo). SIGKILL cannot be
  caught, so a leftover ``.NAME.planner-*.tmp`` can only come from SIGKILL, a crash of
  the interpreter or a power loss; it is safe to delete.
- ``""`` is not a path: an error, never stdout.

Every failure raises :class:`WriteError`, one line: ``cannot write PATH: reason``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import stat
import sys
import threading

from .errors import WriteError

TEMP_MARK = "planner"  # .NAME.planner-XXXXXXXX.tmp
CAUGHT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_OWN_FD = re.compile(r"/(?:dev/fd|proc/self/fd)/([0-9]+)")
_STD = {"/dev/stdout": 1, "/dev/stderr": 2}
_NAME_MAX = 255
_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


class _Signalled(BaseException):
    def __init__(self, signo: int):
        super().__init__(signo)
        self.signo = signo


def write_output(path, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text written as UTF-8) to ``path`` by the rules above."""
    name = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else path
    if not isinstance(name, str) or name == "":
        raise WriteError("cannot write '': the output path is empty")
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        own = _own_fd(name)
        if own is not None:
            _write_own_fd(own, data)
            return
        pfd, base = _walk(name)
        try:
            try:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise OSError(errno.EAGAIN, "it was changed while planner resolved it")
            if st is not None and not stat.S_ISREG(st.st_mode) and _write_into(pfd, base, data):
                return
            _replace(name, pfd, base, data)
        finally:
            os.close(pfd)
    except OSError as exc:
        raise WriteError(f"cannot write {_show(name)}: {_reason(exc)}") from None


def _show(name: str) -> str:
    """A path for a one-line message: quoted if it holds a newline or other control."""
    return name if name.isprintable() else repr(name)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _own_fd(name: str) -> int | None:
    """The descriptor a /dev/stdout-like name stands for in this process, if it is one."""
    norm = os.path.normpath(name)
    if norm in _STD:
        return _STD[norm]
    m = _OWN_FD.fullmatch(norm)
    return int(m.group(1)) if m else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_own_fd(fd: int, data: bytes) -> None:
    if fd in (1, 2):  # anything Python buffered for it goes first
        with contextlib.suppress(Exception):
            (sys.stdout if fd == 1 else sys.stderr).flush()
    _write_all(fd, data)


def _write_into(pfd: int, base: str, data: bytes) -> bool:
    """Write into an existing character device or FIFO; False if it is a regular file now."""
    fd = os.open(base, os.O_WRONLY | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):  # swapped since the stat: take the atomic path
            return False
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            kind = "a block device" if stat.S_ISBLK(mode) else "not a regular file"
            raise OSError(errno.EINVAL, f"it is {kind}")
        _write_all(fd, data)
        return True
    finally:
        os.close(fd)


def _current_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - kernels before 4.7
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _temp_name(base: str) -> str:
    suffix = f".{TEMP_MARK}-{secrets.token_hex(4)}.tmp"
    room = _NAME_MAX - len(os.fsencode(suffix)) - 1
    stem = os.fsencode(base)[:room].decode("utf-8", "ignore") if room > 0 else ""
    return f".{stem}{suffix}"


def _walk(name: str) -> tuple[int, str]:
    """An ``O_PATH`` fd on the directory a write goes into, and the entry to write there.

    Every component is opened ``O_NOFOLLOW`` relative to the one before, so a link
    swapped in mid-way is refused, not followed. Symbolic links are resolved here, one
    at a time: a link in a sticky world-writable directory (``/tmp``) is followed only if
    it belongs to us or to the directory's owner, as the kernel's ``protected_symlinks``
    does, whatever that sysctl says: root must not write where another user points.
    """
    path = name if os.path.isabs(name) else os.path.join(os.getcwd(), name)
    pending = path.split("/")[::-1]  # a stack of components
    dir_flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", dir_flags)
    links = 0
    try:
        while pending:
            part = pending.pop()
            last = not pending
            if part in ("", ".", ".."):
                if last:
                    raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
                if part == "..":
                    fd = _step(fd, os.open("..", dir_flags, dir_fd=fd))
                continue
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return fd, part
                raise
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                _check_link(fd, st)
                target = os.readlink(part, dir_fd=fd)
                if target.startswith("/"):
                    fd = _step(fd, os.open("/", dir_flags))
                pending.extend(target.split("/")[::-1])
            elif last:
                return fd, part
            elif stat.S_ISDIR(st.st_mode):
                fd = _step(fd, os.open(part, dir_flags, dir_fd=fd))
            else:
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))  # pragma: no cover - "/"
    except BaseException:
        os.close(fd)
        raise


def _step(old: int, new: int) -> int:
    os.close(old)
    return new


def _check_link(dir_fd: int, link: os.stat_result) -> None:
    parent = os.fstat(dir_fd)
    shared = stat.S_ISVTX | stat.S_IWOTH
    if parent.st_mode & shared == shared and link.st_uid not in (os.geteuid(), parent.st_uid):
        raise OSError(
            errno.EACCES,
            f"it goes through a symbolic link owned by uid {link.st_uid} in a sticky "
            "world-writable directory: not followed",
        )


@contextlib.contextmanager
def _catch_signals():
    """While writing, SIGTERM/SIGHUP raise _Signalled; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; errors still clean up
        return

    def handler(signo, _frame):
        raise _Signalled(signo)

    previous = {}
    try:
        for signo in CAUGHT_SIGNALS:
            old = signal.getsignal(signo)
            if old is signal.SIG_IGN or old is None:
                continue  # nohup and friends: keep ignoring it
            previous[signo] = signal.signal(signo, handler)
        yield
    finally:
        _block()
        for signo, old in previous.items():
            signal.signal(signo, old)
        _unblock()


def _block() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, CAUGHT_SIGNALS)


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CAUGHT_SIGNALS)


def _replace(name: str, pfd: int, base: str, data: bytes) -> None:
    try:
        with _catch_signals():
            _replace_atomically(pfd, base, data)
    except _Signalled as sig:
        signal.raise_signal(sig.signo)  # to the previous handler: by default, death
        raise WriteError(
            f"cannot write {_show(name)}: interrupted by {signal.Signals(sig.signo).name}"
        ) from None


def _replace_atomically(dfd: int, base: str, data: bytes) -> None:
    tmp = fd = None
    try:
        try:
            old = os.stat(base, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and not stat.S_ISREG(old.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(old.st_mode) else "not a regular file"
            raise OSError(errno.EINVAL, f"it became {kind} while planner was writing")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(100):
            candidate = _temp_name(base)
            _block()  # the name is recorded before a signal can interrupt
            try:
                fd = os.open(candidate, flags, 0o600, dir_fd=dfd)
                tmp = candidate
                break
            except FileExistsError:
                continue
            finally:
                _unblock()
        else:  # pragma: no cover - 100 random names taken
            raise OSError(errno.EEXIST, "no free temporary file name")
        _write_all(fd, data)
        if old is not None:
            _keep_owner(fd, old)
            os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after chown, which clears setgid
        else:
            os.fchmod(fd, 0o666 & ~_current_umask())
        os.fsync(fd)  # data, owner and mode
        os.close(fd)
        fd = None
        _block()
        try:
            os.rename(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
            tmp = None
        finally:
            _unblock()
        _sync_dir(dfd)
    except BaseException:
        _block()
        try:
            if fd is not None:
                os.close(fd)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
        finally:
            _unblock()
        raise


def _sync_dir(pfd: int) -> None:
    """fsync the directory (through a readable fd: ``pfd`` is ``O_PATH``) after the rename."""
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
    except PermissionError:  # a search-only directory: nothing more we can do
        return
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS):
            raise OSError(
                exc.errno, f"{_reason(exc)} while syncing its directory (it was replaced)"
            ) from None
    finally:
        os.close(dfd)


def _keep_owner(fd: int, old: os.stat_result) -> None:
    """Give the temporary file the owner and group of the file it replaces, as far as allowed."""
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:  # not root: keep at least the group if we are in it
        with contextlib.suppress(PermissionError):
            os.fchown(fd, -1, old.st_gid)
