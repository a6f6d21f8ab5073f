"""Turning the vectors of a collection stored before vectors were turned (:mod:`._rotation`).

A collection made now says so in its metadata (``vectors: turned-v1``) and holds only turned
vectors. One made before holds the embedder's own vectors: the first time it is opened, each row
is turned and marked (``_t``) in the same write, batch by batch, and the collection is marked
last. A run cut short leaves marked rows and unmarked ones; the next open turns only the
unmarked ones, so no vector is turned twice.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from specsteer.memory._chroma_client import wrap_backend
from specsteer.memory._crypto import UserKeys

__all__ = ["TURNED", "VECTORS", "turn_stored_vectors"]

VECTORS: Final = "vectors"
TURNED: Final = "turned-v1"
_ROW_MARK: Final = "_t"
_BATCH: Final = 256


def turn_stored_vectors(client: Any, keys: UserKeys, col: Any, hint: str) -> None:
    """Turn every unmarked row's vector of ``col``, then mark the collection as turned."""
    with wrap_backend("turn the stored vectors", hint):
        ids = list(col.get(include=[])["ids"])
        for start in range(0, len(ids), _BATCH):
            _turn_batch(keys, col, ids[start : start + _BATCH])
        # Read afresh: the persona, sealed in the same metadata, may have changed meanwhile.
        fresh = client.get_collection(col.name, embedding_function=None)
        col.modify(metadata={**(fresh.metadata or {}), VECTORS: TURNED})


def _turn_batch(keys: UserKeys, col: Any, ids: list[str]) -> None:
    found = col.get(ids=ids, include=["embeddings", "metadatas"])
    todo = [i for i, row in enumerate(found["metadatas"]) if not (row or {}).get(_ROW_MARK)]
    if not todo:
        return
    vectors = np.asarray(found["embeddings"], dtype=np.float32)[todo]
    col.update(
        ids=[found["ids"][i] for i in todo],
        embeddings=keys.turn(vectors),
        metadatas=[{_ROW_MARK: True} for _ in todo],  # merged into each row's metadata
    )
