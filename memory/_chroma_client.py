"""Opening a chromadb client (embedded or a server), telemetry off, with typed failures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from specsteer._errors import (
    ConfigurationError,
    MemoryStoreError,
    MissingDependencyError,
    SpecSteerError,
)
from specsteer._home import private_dir, private_umask, tighten_tree

__all__ = ["chromadb_module", "open_client", "wrap_backend"]

#: chromadb's SQLite file in an embedded store's folder.
DB_FILE = "chroma.sqlite3"
#: What SQLite says of a file that is not a database or is corrupt (SQLITE_NOTADB, _CORRUPT).
_DAMAGED = ("code: 26", "code: 11", "not a database", "malformed")
#: What SQLite says when it may not write (SQLITE_READONLY).
_READ_ONLY = ("code: 8)", "readonly database", "Read-only file system")


def chromadb_module() -> Any:
    """The ``chromadb`` package, or an error naming the ``pip install`` that brings it."""
    try:
        import chromadb
    except ImportError as e:
        raise MissingDependencyError("chromadb", extra="memory", purpose="the memory store") from e
    return chromadb


@contextlib.contextmanager
def wrap_backend(action: str, hint: str) -> Iterator[None]:
    """Turn chromadb failures into MemoryStoreError, keeping our own errors as they are.

    Runs under umask 077: chromadb makes its files and index folders world-readable otherwise.
    """
    try:
        with private_umask():
            yield
    except SpecSteerError:
        raise
    except Exception as e:
        raise MemoryStoreError(
            f"the vector store failed to {action} ({type(e).__name__}); {hint}"
        ) from e


def open_client(path: Path | None, url: str | None, headers: Mapping[str, str] | None) -> Any:
    """A chromadb ``PersistentClient`` on ``path``, or an ``HttpClient`` for ``url``.

    Raises:
        ConfigurationError: A malformed ``url``.
        MemoryStoreError: The store cannot be opened or reached; the message says what to check.
    """
    chromadb = chromadb_module()
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if url is None:
        assert path is not None
        # The vectors partly invert to text: the folder and every file in it are private, even
        # when an older version or another tool made them readable.
        private_dir(path)
        tighten_tree(path)
        return _open_embedded(chromadb, path, settings)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"url {url!r} is not an http(s) URL; use e.g. 'http://127.0.0.1:8000'"
        )
    with wrap_backend(f"connect to {url}", "start the server with: chroma run --path DIR --port N"):
        return chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            headers=dict(headers or {}),
            settings=settings,
        )


def _open_embedded(chromadb: Any, path: Path, settings: Any) -> Any:
    """A ``PersistentClient`` on ``path``, refusing a store file that is empty or damaged.

    chromadb writes its schema into a new ``chroma.sqlite3`` as it makes it, so a file of zero
    bytes is one that was truncated, and opening it would silently start an empty store over
    the memories it held.
    """
    db = path / DB_FILE
    if db.is_file() and db.stat().st_size == 0:
        raise MemoryStoreError(
            f"the store file {db} is empty (0 bytes): it was truncated or damaged; restore the "
            f"folder {path} from a backup, or delete {db} to start an empty store (its "
            "memories are lost)"
        )
    try:
        with private_umask():
            return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as e:
        raise MemoryStoreError(
            f"the vector store failed to open {path} ({type(e).__name__}); {_open_hint(path, e)}"
        ) from e


def _open_hint(path: Path, e: Exception) -> str:
    """What to do when chromadb cannot open the embedded store at ``path``."""
    db = path / DB_FILE
    if db.is_file() and any(sign in str(e) for sign in _DAMAGED):
        return (
            f"the store file {db} is damaged or is not a chromadb database; restore the folder "
            f"{path} from a backup, or move it aside to start an empty store"
        )
    if any(sign in str(e) for sign in _READ_ONLY):
        return (
            f"the folder {path} is read-only, and chromadb writes to its database even to read "
            "it; make it writable, or copy it somewhere writable and open the copy"
        )
    return "check the folder is writable and holds a chromadb store"
