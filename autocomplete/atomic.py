"""Writing files so that nothing the user made is lost: atomic replacement, output checks and the output lock.

Everything the package writes (model files, resume states, the token cache) goes through :func:`atomic_write`: a
temporary file next to the target, fsynced, then renamed over it, so readers see the old file or the whole new one
and a failure or a kill leaves the old one. Only regular files are ever replaced: a device node, a named pipe, a
socket or a folder at the target is refused (as root, ``-o /dev/null`` would otherwise replace the system's
``/dev/null``). A symbolic link is written *through*: its target file is replaced and the link stays a link.

:func:`exclusive_lock` keeps two programs from writing the same output at once (the second is refused in one line
instead of silently replacing the first one's work). Its ``.lock`` file is never written through a link, and only a
file a lock made is ever truncated: anything else at its place is refused in one line and left alone.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autocomplete.errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; atomic renames still keep every file whole
    fcntl = None  # type: ignore[assignment]


def resolve_target(path: Path | str) -> Path:
    """The file a write to ``path`` changes: ``path`` itself, or the file a symbolic link (chain) points to."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _kind(mode: int) -> str | None:
    """What a non-regular file is, for messages; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_replaceable(path: Path | str) -> Path:
    """The resolved target of ``path`` when it is absent or a regular file; :class:`OutputError` otherwise."""
    target = resolve_target(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputError(f"{path}: cannot be written ({e.strerror or e})") from None
    kind = _kind(mode)
    if kind is not None:
        raise OutputError(f"{path}: is {kind}, not a regular file; refusing to replace it")
    return target


def atomic_write(path: Path | str, write: Callable[[Any], None], mode: str = "wb", private: bool = False) -> None:
    """Call ``write(file_object)`` on a temp file beside ``path``'s target (opened with ``mode``), then rename it over
    the target: readers see the old file or the whole new one, and a failure or a kill leaves the old one.

    A symbolic link is written through (the file it points to is replaced); anything but a regular file at the
    target raises :class:`OutputError` before anything is written. ``private``: readable by its user only (0600),
    for what holds the user's own text; otherwise the file keeps its mode, or gets the umask's for a new one."""
    target = check_replaceable(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        if not private:  # mkstemp makes 0600; a model file should read like any other file
            os.fchmod(fd, _file_mode(target))
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


_TEMPORARY = re.compile(r"[a-z0-9_]{8}\.(tmp|probe)")  # mkstemp's eight random characters, then our suffix


def remove_leftovers(path: Path | str) -> list[tuple[Path, int]]:
    """Remove the temporary files (``.NAME.XXXXXXXX.tmp``, ``.probe``) that :func:`atomic_write` and
    :func:`check_writable` leave beside ``path``'s target when a kill cuts a save short, and return them with their
    sizes. Only a caller holding ``path``'s :func:`exclusive_lock` may call it: then no running write owns them.
    A file that cannot be removed is left alone, and not returned."""
    target = resolve_target(path)
    directory = target.parent if str(target.parent) else Path(".")
    prefix = f".{target.name}."
    removed = []
    try:
        names = [name for name in os.listdir(directory) if name.startswith(prefix)]
    except OSError:
        return []
    for name in names:
        if not _TEMPORARY.fullmatch(name[len(prefix):]):
            continue
        leftover = directory / name
        try:
            info = os.lstat(leftover)
            if not stat.S_ISREG(info.st_mode):
                continue
            leftover.unlink()
        except OSError:
            continue
        removed.append((leftover, info.st_size))
    return removed


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_writable(path: Path | str) -> None:
    """Fail now, not after hours of training, if ``path`` cannot be written (or must not be replaced)."""
    path = Path(path)
    target = check_replaceable(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"{path}: folder {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{path}: cannot write here ({e.strerror or e})") from None


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether ``a`` and ``b`` are (or would be, once written) the same file: links and hard links included."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where a write would land
        return os.path.realpath(a) == os.path.realpath(b)


class LockedError(OutputError):
    """Another process holds the lock; ``by`` names it (`` (process 123)``) when it could be read."""

    def __init__(self, message: str, by: str = "") -> None:
        super().__init__(message)
        self.by = by


def lock_path(path: Path | str) -> Path:
    """The lock file of an output: beside the file a write lands in, so two links to one model share it."""
    target = resolve_target(path)
    return target.with_name(target.name + ".lock")


_LOCK_BYTES = 32  # a lock file holds its holder's process number: anything larger was not made by a lock


def _not_a_lock(fd: int) -> str | None:
    """Why the open file ``fd`` at a lock's place is not a lock file this package made, or None if it is one: a
    regular file with no other name, empty or holding a process number. Only such a file is ever truncated."""
    info = os.fstat(fd)
    kind = _kind(info.st_mode)
    if kind is not None:
        return f"is {kind}"
    if info.st_nlink > 1:
        return "has another name too (a hard link)"
    if info.st_size > _LOCK_BYTES or info.st_size and not os.pread(fd, _LOCK_BYTES, 0).strip().isdigit():
        return "holds something other than a process number"
    return None


@contextmanager
def exclusive_lock(path: Path | str, what: str = "another training") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a ``.lock`` file beside it) for the block; :class:`OutputError` at once
    when ``what`` (another process) holds it. The lock file is removed when the block ends.

    Only a lock file is ever written: a symbolic link at the lock's place is never followed (it could point at any
    file, which the process number would replace), and a file that is not one a lock made (a hard link, other data,
    a pipe) is never truncated. Either is refused in one line that names it, and left as it is: it was put there by
    someone, and only they know what it is for."""
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(lock, flags, 0o666)
        except OSError as e:
            if os.path.islink(lock):  # ELOOP (or EMLINK on some systems): the name is a link
                raise OutputError(f"{lock}: is a symbolic link, not a lock file; remove it to go on") from None
            raise OutputError(f"{lock}: cannot create the lock file ({e.strerror or e})") from None
        try:
            kind = _kind(os.fstat(fd).st_mode)
            if kind is not None:  # (never read: a pipe would have nothing to read)
                raise OutputError(f"{lock}: is {kind}, not a lock file; remove it to go on")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, _LOCK_BYTES, 0).decode("ascii", "replace").strip()
                by = f" (process {holder})" if holder.isdigit() else ""
                raise LockedError(
                    f"{path}: {what}{by} is writing this file; wait for it to end or choose another output", by
                ) from None
            try:  # the file we locked may have been removed by the previous holder in the meantime: lock the new one
                if os.fstat(fd).st_ino == os.lstat(lock).st_ino:
                    if (why := _not_a_lock(fd)) is not None:
                        raise OutputError(f"{lock}: {why}, not a lock file; remove it to go on")
                    break
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still held: a waiting process then locks a fresh file
        os.close(fd)


__all__ = [
    "atomic_write",
    "check_replaceable",
    "check_writable",
    "exclusive_lock",
    "lock_path",
    "remove_leftovers",
    "resolve_target",
    "same_file",
]
