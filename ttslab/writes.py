"""How ttslab writes and reads its own files: never through a symbolic link, never half, never from a FIFO.

A run directory may come from someone else (a copied shard, a tarball): a planted `records.jsonl ->
~/.bashrc` must not make ttslab truncate or append to the target. So every file ttslab writes (lock,
records, summaries, config, identity, invocations, exports, figures, the site) is

* opened with `O_NOFOLLOW` (appends, the lock), or replaced whole through a temporary file in the same
  directory and a rename (`write_atomic`, `replace_with`): the rename replaces a directory entry, never
  the bytes of whatever a link points to, and readers see the old file or the new one;
* refused with one line when its name is already a symbolic link or not a regular file (a FIFO, a
  directory, a device): such a name was not made by ttslab.

Reads of ttslab's own files go through `read_regular`, which opens without blocking and refuses
anything but a regular file (a FIFO named records.jsonl would otherwise hang the reader forever).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ttslab.errors import InputError

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind(mode: int) -> str:
    """What a stat mode is, in words ("a FIFO (named pipe)", "a directory", ...; "a file" for a regular file)."""
    return next((word for test, word in _KINDS if test(mode)), "a file")


def _refuse(path: Path, what: str) -> InputError:
    return InputError(f"{path} is {what}, not a file ttslab wrote; ttslab never writes through links or into "
                      "special files: remove it (or choose another output) and run again")


def check_writable_name(path: str | os.PathLike) -> None:
    """Refuse a destination name that exists as anything but a regular file (a symlink included)."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(p, kind(st.st_mode))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # make a rename durable
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def replace_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Make `path` by calling `write(tmp)` on a temporary name beside it, then renaming it over `path`.

    For writers that take a file name (pyarrow, matplotlib). The temporary file is removed on any failure,
    so a full disk or a crash never leaves a half-made `path`."""
    p = Path(path)
    check_writable_name(p)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.lstat(p).st_mode & 0o777 if p.exists() else 0o644)
        check_writable_name(p)  # (again: a link planted while writing is still not followed, only refused)
        os.replace(tmp, p)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(p.parent)
    return p


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace `path` by `data` whole (temporary file + rename in its directory; never through a link)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return replace_with(path, lambda tmp: tmp.write_bytes(raw))


def open_nofollow(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """`os.open` that refuses a symbolic link or a non-regular file at `path` (and never blocks on a FIFO)."""
    p = Path(path)
    try:
        fd = os.open(p, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno in (40, 31):  # ELOOP: the name is a symlink (EMLINK on some BSDs)
            raise _refuse(p, "a symbolic link") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _refuse(p, kind(st.st_mode))
    os.set_blocking(fd, True)
    return fd


def open_append(path: str | os.PathLike):
    """A text file opened for appending lines, created if missing; never through a link."""
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line (and fsync it); never through a link."""
    with open_append(path) as f:
        f.write(line if line.endswith("\n") else line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; a FIFO, directory or device there is an `InputError`, not a hang."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except IsADirectoryError:
        raise InputError(f"{p} is a directory; expected a file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{p} is {kind(st.st_mode)}, not a regular file; expected the file ttslab wrote "
                             "there: remove it and run again")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)
