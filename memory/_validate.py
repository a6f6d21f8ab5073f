"""Checks on caller input; each failure is an ``InvalidInputError`` whose message names the fix."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from specsteer._errors import InvalidInputError
from specsteer.memory._types import MemoryInput, MetadataValue
from specsteer.privacy import validate_user_id

__all__ = [
    "MAX_METADATA_KEYS",
    "RESERVED_USER_ID",
    "check_items",
    "check_k",
    "check_memory_id",
    "check_metadata",
    "check_min_score",
    "check_query",
    "check_text",
    "check_ttl",
    "check_unicode",
    "check_user_id",
]

#: Keyring id of the device-wide naming key; no real user may take it.
RESERVED_USER_ID = "specsteer.memory-index"
MAX_METADATA_KEYS = 32
_MAX_KEY_CHARS = 64
_MAX_STR_VALUE_CHARS = 2000
_MAX_K = 1000


def check_user_id(user_id: object) -> str:
    """Validate a user id (keyring rules, and not the reserved naming id)."""
    if not isinstance(user_id, str):
        raise InvalidInputError(
            f"user_id must be a str, got {type(user_id).__name__}; pass the user's id as text"
        )
    validate_user_id(user_id)
    if user_id == RESERVED_USER_ID:
        raise InvalidInputError(f"user id {RESERVED_USER_ID!r} is reserved; choose another id")
    return user_id


def check_unicode(text: str, *, what: str) -> str:
    """Refuse text that cannot be written as UTF-8: a lone surrogate (U+D800 to U+DFFF), which
    is what Python makes of bytes that were not UTF-8 (a command-line argument, a file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"{what} holds {e.object[e.start : e.end]!a} at character {e.start}, a lone "
            "surrogate that is not a character (bytes that were not UTF-8); pass the text as "
            "valid UTF-8"
        ) from None
    return text


def _check_str(text: object, what: str, fix: str) -> str:
    """A non-blank str without NUL that can be written as UTF-8; ``fix`` says what to pass."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError(f"{what} is empty or blank; {fix}")
    if "\x00" in text:
        raise InvalidInputError(f"{what} contains a NUL character; remove it")
    return check_unicode(text, what=what)


def check_text(text: object, max_chars: int, *, what: str = "text") -> str:
    """Validate a memory text: a non-blank str of at most ``max_chars`` characters."""
    checked = _check_str(text, what, "pass some text to remember")
    if len(checked) > max_chars:
        raise InvalidInputError(
            f"{what} has {len(checked)} characters, over the limit of {max_chars}; split it with "
            "MemoryStore.ingest_notes (which chunks long notes) or raise max_text_chars"
        )
    return checked


def check_query(query: object, max_chars: int) -> str:
    """Validate a search query: a non-blank str of at most ``max_chars`` characters."""
    checked = _check_str(query, "query", "pass some text to search for")
    if len(checked) > max_chars:
        raise InvalidInputError(
            f"query has {len(checked)} characters, over the limit of {max_chars}; search with a "
            "shorter text (a sentence finds the memories closest to it)"
        )
    return checked


def check_memory_id(memory_id: object) -> str:
    """Validate a memory id as returned by the store."""
    if not isinstance(memory_id, str) or not memory_id or len(memory_id) > 128:
        raise InvalidInputError(
            "memory_id must be a non-empty str of at most 128 characters, as returned by add()"
        )
    return memory_id


def check_metadata(metadata: object) -> dict[str, MetadataValue]:
    """Validate metadata: a mapping of str keys to str, int, finite float or bool values."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping (dict), got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidInputError(
            f"metadata has {len(metadata)} keys, over the limit of {MAX_METADATA_KEYS}; "
            "keep only the keys you filter on or show"
        )
    out: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS:
            raise InvalidInputError(
                f"metadata key {key!r} must be a non-empty str of at most {_MAX_KEY_CHARS} characters"
            )
        check_unicode(key, what=f"metadata key {key!a}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"metadata value for {key!r} is {value}; use a finite number")
        if isinstance(value, str) and len(value) > _MAX_STR_VALUE_CHARS:
            raise InvalidInputError(
                f"metadata value for {key!r} is over {_MAX_STR_VALUE_CHARS} characters; "
                "store long text as a memory instead"
            )
        if isinstance(value, str):
            check_unicode(value, what=f"metadata value for {key!a}")
        if not isinstance(value, str | int | float | bool):
            raise InvalidInputError(
                f"metadata value for {key!r} is a {type(value).__name__}; use str, int, float "
                "or bool (encode lists or dicts as a JSON string)"
            )
        out[key] = value
    return out


def check_ttl(ttl: object) -> float | None:
    """Validate a TTL (seconds as int/float, or a timedelta); None means no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise InvalidInputError(
            f"ttl must be a positive number of seconds or a timedelta, got {ttl!r}; "
            "pass None for no expiry"
        )
    return float(ttl)


def check_k(k: object) -> int:
    """Validate a result count."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
        raise InvalidInputError(f"k must be an int from 1 to {_MAX_K}, got {k!r}")
    return k


def check_min_score(min_score: Any) -> float | None:
    """Validate a similarity floor (cosine, in [-1, 1])."""
    if min_score is None:
        return None
    if (
        isinstance(min_score, bool)
        or not isinstance(min_score, int | float)
        or not -1.0 <= float(min_score) <= 1.0
    ):
        raise InvalidInputError(
            f"min_score must be a cosine similarity in [-1, 1] or None, got {min_score!r}"
        )
    return float(min_score)


def check_items(items: object, metadata: object, ttl: object, max_chars: int) -> list[MemoryInput]:
    """Validate a batch for ``add_many``: every item before anything is written.

    Returns:
        One ``MemoryInput`` per item, its metadata merged over ``metadata`` and its ttl
        resolved (the item's own, else the batch-wide one).
    """
    base_meta = check_metadata(metadata)
    base_ttl = check_ttl(ttl)
    if isinstance(items, str | MemoryInput) or not isinstance(items, Iterable):
        raise InvalidInputError("items must be a list of texts; for one text use add()")
    out: list[MemoryInput] = []
    for i, item in enumerate(items):
        try:
            out.append(_check_item(item, base_meta, base_ttl, max_chars))
        except InvalidInputError as e:
            raise InvalidInputError(f"item {i}: {e}") from e
    return out


def _check_item(
    item: object, base_meta: dict[str, MetadataValue], base_ttl: float | None, max_chars: int
) -> MemoryInput:
    if not isinstance(item, MemoryInput):
        return MemoryInput(check_text(item, max_chars), base_meta, base_ttl)
    meta = {**base_meta, **check_metadata(item.metadata)}
    item_ttl = check_ttl(item.ttl) if item.ttl is not None else base_ttl
    return MemoryInput(check_text(item.text, max_chars), meta, item_ttl)
