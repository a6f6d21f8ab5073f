"""Where specsteer keeps on-disk state, and how private it stays there.

One root, ``SPECSTEER_HOME`` (default ``~/.specsteer``). Folders under it are 0700 and files
0600, and are tightened on every open: a folder made 0755 by an older version, a hand-made
``mkdir`` or a library that ignores the umask does not stay readable by other users.

This module imports nothing from the package, so every subpackage may use it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["private_dir", "private_umask", "specsteer_home", "tighten_tree"]

logger = logging.getLogger(__name__)

_umask_lock = threading.Lock()
_umask_depth = 0
_umask_saved = 0
_read_only_said = False


def _tighten(path: Path, mode: int) -> None:
    """Clear group and other bits of ``path`` (never through a link; only what we own).

    Nothing is written when they are clear already, and a file system that refuses the change
    (mounted read-only) is logged, not raised: reading state must work there.
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
            return
        if st.st_uid != os.getuid():
            logger.warning("cannot tighten %s: it belongs to another user", path)
            return
        os.chmod(path, mode)
    except FileNotFoundError:
        return  # removed meanwhile (a store's temporary file)
    except OSError as e:
        if e.errno != errno.EROFS:
            raise
        _read_only(path)


def _read_only(path: Path) -> None:
    """Say once per process that state on a read-only file system stays as loose as it is."""
    global _read_only_said
    level = logging.DEBUG if _read_only_said else logging.WARNING
    _read_only_said = True
    logger.log(level, "cannot tighten %s and what is under it: the file system is read-only", path)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) 0700, or tighten it to 0700 if it exists looser.

    An existing folder is not written to unless it is looser than 0700, so a read-only state
    folder can still be opened for reading.
    """
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path, 0o700)
    return path


def tighten_tree(path: Path) -> None:
    """Folders under ``path`` to 0700 and files to 0600 (links are left, never followed)."""
    _tighten(path, 0o700)
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        for name in dirnames:
            _tighten(here / name, 0o700)
        for name in filenames:
            _tighten(here / name, 0o600)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Umask 077 while a library writes our state (chromadb makes its files 0644 otherwise).

    The umask belongs to the process, so nested and concurrent users share one setting: the
    first in sets it, the last out restores it; meanwhile other threads' new files are private
    too, which errs on the safe side.
    """
    global _umask_depth, _umask_saved
    with _umask_lock:
        if _umask_depth == 0:
            _umask_saved = os.umask(0o077)
            os.umask(_umask_saved | 0o077)
        _umask_depth += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_depth -= 1
            if _umask_depth == 0:
                os.umask(_umask_saved)


def specsteer_home() -> Path:
    """Return the state root, creating it (mode 0700) or tightening it to 0700."""
    raw = os.environ.get("SPECSTEER_HOME")
    root = Path(raw).expanduser() if raw else Path.home() / ".specsteer"
    return private_dir(root)
