"""Removing what an embedded chromadb store leaves behind after deletes: free pages, index files."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from specsteer._errors import MemoryStoreError

__all__ = ["vacuum_folder"]

_UUID_DIR = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def vacuum_folder(path: Path) -> None:
    """Rebuild the store's SQLite file and shred the index folders no collection uses.

    Run it when no other process uses the store.

    Raises:
        MemoryStoreError: The database is busy or unreadable; the message says what to do.
    """
    live = _vacuum_sqlite(path / "chroma.sqlite3")
    for entry in path.iterdir():
        if entry.is_dir() and _UUID_DIR.fullmatch(entry.name) and entry.name not in live:
            for file in entry.iterdir():
                _shred(file)
            entry.rmdir()


def _vacuum_sqlite(db_path: Path) -> set[str]:
    """VACUUM the database; return the ids of the segments (index folders) still in use."""
    try:
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            live = {row[0] for row in conn.execute("SELECT id FROM segments")}
            conn.execute("VACUUM")
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise MemoryStoreError(
            f"could not vacuum {db_path} ({e}); close other processes using the store, "
            "then call MemoryStore.vacuum()"
        ) from e
    return live


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, then unlink it (best effort against casual recovery)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)
