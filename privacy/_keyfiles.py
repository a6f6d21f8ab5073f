"""Key files on disk: private (0600), never through a symbolic link, created only once.

Every open passes ``O_NOFOLLOW``, so a link planted where a key file belongs is refused rather
than followed (reading a key someone else chose, or overwriting the file the link points at when
a key is destroyed). A new file is written under a random temporary name opened with
``O_EXCL``, then either renamed over the old one (:func:`write_private`, for updates) or linked
into place only if no file is there yet (:func:`create_private`): when two processes make the
same key at once, one wins and the other reads the winner's key.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

__all__ = ["SymlinkError", "create_private", "fsync_dir", "read_private", "shred", "write_private"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SymlinkError(OSError):
    """A key file's path is a symbolic link (refused, never followed)."""


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | _NOFOLLOW, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SymlinkError(errno.ELOOP, "is a symbolic link", str(path)) from e
        raise


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes:
    """The file's bytes, refusing a symbolic link (:class:`SymlinkError`)."""
    fd = _open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _temp(path: Path, data: bytes) -> Path:
    """``data`` in a new 0600 file beside ``path`` (random name, ``O_EXCL``), fsynced."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (temp file, fsync, rename)."""
    if path.is_symlink():
        raise SymlinkError(errno.ELOOP, "is a symbolic link", str(path))
    tmp = _temp(path, data)
    try:
        os.replace(tmp, path)  # a rename replaces a link itself, never its target
    except BaseException:
        tmp.unlink(missing_ok=True)  # it holds the same data
        raise
    fsync_dir(path.parent)


def create_private(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if nothing is there (link-if-absent).

    Returns:
        True when this call created the file; False when one already existed (another
        process made it first: read that one).
    """
    tmp = _temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def shred(path: Path) -> None:
    """Overwrite the file with zeros, fsync and unlink it; a symbolic link is only unlinked."""
    try:
        fd = _open(path, os.O_WRONLY)
    except SymlinkError:
        path.unlink()  # the link goes; whatever it points at is not touched
        fsync_dir(path.parent)
        return
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)
