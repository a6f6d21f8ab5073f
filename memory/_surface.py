"""The part of a store's public API that the functions over the seam (export, import, ingestion)
use, as a structural type: they depend on what a store does, not on the class that does it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from specsteer.memory._persona import Persona
from specsteer.memory._types import Memory, MemoryInput, MetadataValue

__all__ = ["StoreSurface"]


class StoreSurface(Protocol):
    """What export, import and ingestion call on a store (every ``BaseMemoryStore`` has it)."""

    @property
    def max_text_chars(self) -> int: ...

    @property
    def batch_size(self) -> int: ...

    def memories(self, user_id: str, *, where: Mapping[str, Any] | None = None) -> list[Memory]: ...

    def put_many(self, user_id: str, memories: Sequence[Memory]) -> None: ...

    def persona(self, user_id: str) -> Persona: ...

    def set_persona(self, user_id: str, persona: Persona) -> Persona: ...

    def add_many(
        self,
        user_id: str,
        items: Iterable[str | MemoryInput],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
        ttl: float | timedelta | None = None,
        progress: bool = True,
        on_batch: Callable[[list[Memory]], None] | None = None,
    ) -> list[Memory]: ...
