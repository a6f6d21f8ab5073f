"""Ingestion: notes and chat transcripts stored as memories, over the store seam."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from specsteer._errors import InvalidInputError
from specsteer.memory._sources import chunk_note, read_notes, read_transcript
from specsteer.memory._surface import StoreSurface
from specsteer.memory._types import Memory, MemoryInput, MetadataValue
from specsteer.memory._validate import check_metadata, check_user_id

__all__ = ["ingest_notes", "ingest_transcript"]


def ingest_notes(
    store: StoreSurface,
    user_id: str,
    notes: str | Path | Iterable[str | Path],
    *,
    metadata: Mapping[str, MetadataValue] | None = None,
    max_chunk_chars: int | None = None,
    ttl: float | timedelta | None = None,
    progress: bool = True,
) -> list[Memory]:
    """Store plain notes, split into paragraph-sized memories.

    Args:
        store: Where to store them.
        user_id: Whose notes they are.
        notes: Note text, a file or folder (``.txt``/``.md``/``.rst``), or a list of them.
        metadata: Added to every piece, next to ``source="notes"`` and ``file`` (file name).
        max_chunk_chars: Longest piece (default 1000, capped at ``max_text_chars``);
            paragraphs are split at sentences, then words.
        ttl: Expiry for every piece.
        progress: Show a progress bar on stderr when it is a terminal.

    Returns:
        The stored memories, in order.
    """
    check_user_id(user_id)
    extra = check_metadata(metadata)
    limit = _chunk_chars(max_chunk_chars, store.max_text_chars)
    items: list[str | MemoryInput] = []
    for text, file_name in read_notes(notes):
        meta: dict[str, MetadataValue] = {"source": "notes"}
        if file_name is not None:
            meta["file"] = file_name
        items += _pieces(text, {**meta, **extra}, limit)
    return store.add_many(user_id, items, ttl=ttl, progress=progress)


def ingest_transcript(
    store: StoreSurface,
    user_id: str,
    transcript: str | Path | Sequence[Mapping[str, Any]],
    *,
    roles: Sequence[str] = ("user",),
    conversation: str | None = None,
    metadata: Mapping[str, MetadataValue] | None = None,
    max_chunk_chars: int | None = None,
    ttl: float | timedelta | None = None,
    progress: bool = True,
) -> list[Memory]:
    """Store the turns of a chat transcript as memories.

    By default only the user's own turns are kept: they are what the user said about
    themselves; assistant turns are mostly generic. Each memory gets metadata
    ``source="transcript"``, ``role``, ``turn`` (index in the transcript) and
    ``conversation`` when given.

    Args:
        store: Where to store them.
        user_id: Whose transcript it is.
        transcript: ``[{"role": ..., "content": ...}, ...]``, or a ``.json``/``.jsonl`` file.
        roles: Which roles' turns to keep.
        conversation: An id for the conversation, stored with every turn.
        metadata, max_chunk_chars, ttl, progress: As for :func:`ingest_notes` (long turns are
            split into pieces).

    Returns:
        The stored memories, in order.
    """
    check_user_id(user_id)
    extra = check_metadata(metadata)
    limit = _chunk_chars(max_chunk_chars, store.max_text_chars)
    wanted = {roles} if isinstance(roles, str) else set(roles)
    items: list[str | MemoryInput] = []
    for turn, role, content in read_transcript(transcript):
        if role not in wanted or not content.strip():
            continue
        meta: dict[str, MetadataValue] = {"source": "transcript", "role": role, "turn": turn}
        if conversation is not None:
            meta["conversation"] = conversation
        items += _pieces(content, {**meta, **extra}, limit)
    return store.add_many(user_id, items, ttl=ttl, progress=progress)


def _pieces(text: str, meta: dict[str, MetadataValue], limit: int) -> list[MemoryInput]:
    return [MemoryInput(piece, meta) for piece in chunk_note(text, limit)]


def _chunk_chars(value: object, max_chars: int) -> int:
    if value is None:
        return min(1000, max_chars)
    if isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= max_chars:
        raise InvalidInputError(
            f"max_chunk_chars must be an int from 20 to max_text_chars ({max_chars})"
        )
    return value
