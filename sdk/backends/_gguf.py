"""GGUF files as both backends read them: the check that a path holds one, and where what is
derived from it (converted weights, a tokenizer folder) is cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from specsteer._errors import InvalidInputError
from specsteer._home import specsteer_home

__all__ = ["check_gguf", "derived_dir"]


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
