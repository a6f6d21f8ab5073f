"""Test doubles for the memory seam: :class:`InMemoryStore`, a store held in a dict.

It goes through the same seam as :class:`~specsteer.memory.MemoryStore` and passes the same
contract tests (``tests/memory/test_contract.py``): validation, de-duplication, expiry, filters,
per-user isolation, forget and reinstate all behave alike. It keeps nothing on disk, encrypts
nothing and needs no chromadb, so a test of code that *uses* memories runs in milliseconds::

    from specsteer.memory.testing import InMemoryStore

    store = InMemoryStore()          # HashEmbedder by default: no model download
    store.add("maya", "I am vegetarian.")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from specsteer.memory._base import BaseMemoryStore, Vectors, Where
from specsteer.memory._crypto import normalize_text
from specsteer.memory._embedder import Embedder, HashEmbedder
from specsteer.memory._errors import UserForgottenError
from specsteer.memory._filters import matches
from specsteer.memory._persona import Persona
from specsteer.memory._types import Memory, SearchHit

__all__ = ["InMemoryStore"]

_Row = tuple[Memory, Vectors]  # the memory and its vector, [dim]


class InMemoryStore(BaseMemoryStore):
    """The memory seam in process memory: for tests, and for sessions that must leave no trace.

    Args:
        embedder: Turns texts into vectors; default :class:`HashEmbedder` (no model).
        max_text_chars: Longest memory accepted.
        batch_size: Texts embedded and written per batch in bulk writes.
        clock: Returns the current Unix time; replace it to test TTLs.
    """

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        max_text_chars: int = 8000,
        batch_size: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            embedder=embedder if embedder is not None else HashEmbedder(),
            max_text_chars=max_text_chars,
            batch_size=batch_size,
            clock=clock,
        )
        self._rows: dict[str, dict[str, _Row]] = {}
        self._personas: dict[str, Persona] = {}
        self._forgotten: set[str] = set()

    def _live(self, user_id: str, where: Where | None = None) -> list[_Row]:
        now = self._clock()
        return [
            (_copy(m), v)
            for m, v in self._rows.get(user_id, {}).values()
            if m.live_at(now) and (where is None or matches(where, m.metadata))
        ]

    def _writable(self, user_id: str) -> dict[str, _Row]:
        if user_id in self._forgotten:
            raise UserForgottenError(user_id)
        return self._rows.setdefault(user_id, {})

    def _insert(self, user_id: str, new: Sequence[Memory], vectors: Vectors) -> list[Memory]:
        with self._lock:
            rows = self._writable(user_id)
            by_text = {normalize_text(m.text): m for m, _ in self._live(user_id)}
            result: list[Memory] = []
            for memory, vector in zip(new, vectors, strict=True):
                key = normalize_text(memory.text)
                if key not in by_text:
                    by_text[key] = memory
                    rows[memory.id] = (_copy(memory), vector.copy())
                result.append(by_text[key])
            return result

    def _put(self, user_id: str, memories: Sequence[Memory], vectors: Vectors) -> None:
        with self._lock:
            rows = self._writable(user_id)
            for memory, vector in zip(memories, vectors, strict=True):
                rows[memory.id] = (_copy(memory), vector.copy())

    def _get(self, user_id: str, memory_id: str) -> Memory | None:
        with self._lock:
            row = self._rows.get(user_id, {}).get(memory_id)
            if row is None or not row[0].live_at(self._clock()):
                return None
            return _copy(row[0])

    def _list(self, user_id: str, where: Where | None) -> list[Memory]:
        with self._lock:
            return [m for m, _ in self._live(user_id, where)]

    def _nearest(
        self, user_id: str, query: Vectors, k: int, where: Where | None, floor: float | None
    ) -> list[SearchHit]:
        with self._lock:
            rows = self._live(user_id, where)
        scored = [SearchHit(m, float(np.dot(query[0], v))) for m, v in rows]
        scored.sort(key=lambda h: h.score, reverse=True)
        return [h for h in scored if floor is None or h.score >= floor][:k]

    def _delete(self, user_id: str, memory_id: str) -> bool:
        with self._lock:
            return self._rows.get(user_id, {}).pop(memory_id, None) is not None

    def _get_persona(self, user_id: str) -> Persona | None:
        with self._lock:
            return self._personas.get(user_id)

    def _put_persona(self, user_id: str, persona: Persona | None) -> None:
        with self._lock:
            self._writable(user_id)
            if persona is None:
                self._personas.pop(user_id, None)
            else:
                self._personas[user_id] = persona

    def _forget(self, user_id: str, purge_vectors: bool) -> None:
        with self._lock:
            self._rows.pop(user_id, None)
            self._personas.pop(user_id, None)
            self._forgotten.add(user_id)

    def _reinstate(self, user_id: str) -> None:
        with self._lock:
            self._forgotten.discard(user_id)

    def _known(self, user_id: str) -> bool:
        with self._lock:
            return any(user_id in held for held in (self._rows, self._personas, self._forgotten))

    def __repr__(self) -> str:
        return f"InMemoryStore(embedder={self._embedder.name!r})"


def _copy(memory: Memory) -> Memory:
    """A memory with its own metadata dict, so callers cannot change what the store holds."""
    return replace(memory, metadata=dict(memory.metadata))
