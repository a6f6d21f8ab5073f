"""GGUF files as both backends read them: the check that a path holds one, and where what is
derived from it (converted weights, a tokenizer folder) is cached.

Several processes may derive the same thing at once (two test workers, the web app beside the
CLI): each writes under a name of its own (:func:`partial`) and the first to finish publishes it
(:func:`publish_dir`); the others drop their copy and read the published one.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from pathlib import Path

from specsteer._errors import InvalidInputError
from specsteer._home import specsteer_home

__all__ = ["check_gguf", "derived_dir", "partial", "publish_dir"]


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """``path`` as a ``Path``, after checking that it is a GGUF file.

    Raises:
        InvalidInputError: the file does not exist or does not start with the GGUF magic bytes.
    """
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise InvalidInputError(f"GGUF file not found: {gguf}")
    with gguf.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise InvalidInputError(f"{gguf} is not a GGUF file (bad magic bytes)")
    return gguf


def derived_dir(gguf: Path, cache_dir: str | os.PathLike[str] | None, suffix: str) -> Path:
    """The cache folder for something derived from ``gguf``: keyed by the file's path, size and
    modification time, so a changed file is derived again."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    root = Path(cache_dir) if cache_dir else specsteer_home() / "models"
    return root / f"{gguf.stem}-{key.hexdigest()[:12]}{suffix}"


def partial(target: Path) -> Path:
    """Where this process writes ``target`` before publishing it: a name no other process uses.
    What a killed process left half-written beside it is removed first."""
    for left in target.parent.glob(f"{glob.escape(target.name)}.partial*"):
        if not _running(left.name.rpartition("-")[2]):
            _remove(left)
    return target.with_name(f"{target.name}.partial-{os.getpid()}")


def _running(pid: str) -> bool:
    """Whether ``pid`` names a running process (a name without one: no)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # running, as another user
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, unless another process published a
    complete one first (``target/.complete``): then ``tmp`` is dropped."""
    if (target / ".complete").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(target, ignore_errors=True)  # an incomplete one, left by a killed process
    try:
        tmp.rename(target)
    except OSError:
        if not (target / ".complete").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
