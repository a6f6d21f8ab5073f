"""Records the memory store hands back: small frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Memory", "MemoryInput", "MetadataValue", "SearchHit"]

#: A metadata value: what survives a JSON round trip unchanged (finite floats only).
MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Memory:
    """One stored memory, decrypted.

    Attributes:
        id: The memory's id (32 hex characters), stable across update, export and import.
        text: The memory's text.
        metadata: The caller's metadata (string keys; str, int, float or bool values).
        created_at: When it was first stored (Unix seconds).
        updated_at: When it last changed (Unix seconds).
        expires_at: When it stops being returned (Unix seconds), or None for never.
    """

    id: str
    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None

    def live_at(self, now: float) -> bool:
        """Whether the memory has not expired at Unix time ``now``."""
        return self.expires_at is None or self.expires_at > now

    def to_json(self) -> dict[str, Any]:
        """Return the memory as a JSON-ready dict (the line format of an export file)."""
        return {
            "id": self.id,
            "text": self.text,
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class SearchHit:
    """One search result.

    Attributes:
        memory: The memory found.
        score: Cosine similarity between the query and the memory, in [-1, 1]; higher is closer.
    """

    memory: Memory
    score: float

    @property
    def id(self) -> str:
        """The memory's id."""
        return self.memory.id

    @property
    def text(self) -> str:
        """The memory's text."""
        return self.memory.text


@dataclass(frozen=True)
class MemoryInput:
    """One item for :meth:`MemoryStore.add_many` when it needs its own metadata or TTL.

    Attributes:
        text: The text to remember.
        metadata: Its metadata; merged over the batch-wide metadata.
        ttl: Seconds until it expires; None uses the batch-wide TTL.
    """

    text: str
    metadata: Mapping[str, MetadataValue] | None = None
    ttl: float | None = None
