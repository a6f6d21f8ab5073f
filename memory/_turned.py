"""Turning the vectors of rows stored before vectors were turned (:mod:`._rotation`).

Every row written now carries the mark ``_t`` (:data:`~._crypto.TURNED_ROW`): its vector is
turned. Rows written before have no mark and hold the embedder's own vectors. The first time a
collection is opened in a process, its unmarked rows are turned, each turned and marked in one
write (chromadb merges the mark into the row's metadata), a batch at a time until none is left.
A run cut short is finished at the next open; a row is never turned twice, since a marked row is
never read for turning, and two processes turning at once write the same values. Nothing else of
the collection is rewritten (its metadata holds the sealed persona).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from specsteer._errors import MemoryStoreError
from specsteer.memory._chroma_client import wrap_backend
from specsteer.memory._crypto import TURNED_ROW, UserKeys

__all__ = ["turn_stored_vectors"]

_BATCH: Final = 256
_UNMARKED: Final = {TURNED_ROW: {"$ne": True}}  # matches rows without the mark


def turn_stored_vectors(keys: UserKeys, col: Any, hint: str) -> int:
    """Turn and mark every unmarked row of ``col``; returns how many were turned."""
    done: set[str] = set()
    with wrap_backend("turn the stored vectors", hint):
        while True:
            found = col.get(where=_UNMARKED, limit=_BATCH, include=["embeddings"])
            ids = list(found["ids"])
            if not ids:
                return len(done)
            if done.issuperset(ids):  # marked, yet read back unmarked: never loop for good
                raise MemoryStoreError("the store did not keep the mark of turned vectors; " + hint)
            col.update(
                ids=ids,
                embeddings=keys.turn(np.asarray(found["embeddings"], dtype=np.float32)),
                metadatas=[{TURNED_ROW: True} for _ in ids],  # merged into each row's metadata
            )
            done.update(ids)
