"""Metadata filters: equality only, checked once, then matched on tags or on plaintext.

A caller's filter names plaintext keys and values; chromadb holds only HMAC tags of them (see
``_crypto``). Equality-shaped operators map one-to-one onto tags. Range operators cannot: a
keyed hash does not preserve order, and an order-preserving encoding would leak the values.
Every store accepts the same filters (:func:`check_where`); the chromadb store translates them
into tag filters (:func:`translate_where`), a store holding plaintext evaluates them
(:func:`matches`) with the same meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specsteer._errors import InvalidInputError
from specsteer.memory._crypto import UserKeys, canonical_value
from specsteer.memory._types import MetadataValue
from specsteer.memory._validate import check_metadata

__all__ = ["check_where", "matches", "translate_where"]

_RANGE = {"$gt", "$gte", "$lt", "$lte"}
# Translating under throwaway keys validates a filter's shape for any store.
_SHAPE_KEYS = UserKeys.derive(bytes(32), "u-shape-check")


def _value(key: str, value: object) -> Any:
    return check_metadata({key: value})[key]


def _clause(keys: UserKeys, key: str, cond: object) -> dict[str, Any]:
    if key.startswith("$"):
        raise InvalidInputError(f"unknown filter operator {key!r}; use $and, $or or a metadata key")
    field = keys.key_field(key)
    if not isinstance(cond, Mapping):
        return {field: keys.value_tag(key, _value(key, cond))}
    if len(cond) != 1:
        raise InvalidInputError(
            f"filter on {key!r} must have exactly one operator, e.g. {{'$eq': value}}; "
            "combine several with $and"
        )
    ((op, arg),) = cond.items()
    if op in ("$eq", "$ne"):
        return {field: {op: keys.value_tag(key, _value(key, arg))}}
    if op in ("$in", "$nin"):
        if not isinstance(arg, list | tuple) or not arg:
            raise InvalidInputError(f"{op} on {key!r} needs a non-empty list of values")
        return {field: {op: [keys.value_tag(key, _value(key, v)) for v in arg]}}
    if op in _RANGE:
        raise InvalidInputError(
            f"range filter {op} on {key!r} is not supported: metadata is encrypted and only "
            "equality is kept as a keyed tag; filter with $eq/$in, or filter the returned hits "
            "in Python"
        )
    raise InvalidInputError(f"unknown filter operator {op!r}; use $eq, $ne, $in or $nin")


def translate_where(keys: UserKeys, where: object) -> dict[str, Any]:
    """Translate a caller's filter into a chromadb ``where`` over tag fields.

    Supported: ``{"key": value}``, ``{"key": {"$eq"|"$ne": value}}``,
    ``{"key": {"$in"|"$nin": [values]}}``, ``{"$and": [...]}``, ``{"$or": [...]}``; several
    keys in one dict mean all of them.

    Raises:
        InvalidInputError: An unsupported operator or value; the message says what to use.
    """
    if not isinstance(where, Mapping) or not where:
        raise InvalidInputError("where must be a non-empty dict such as {'topic': 'food'}")
    parts: list[dict[str, Any]] = []
    for key, cond in where.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list | tuple) or not cond:
                raise InvalidInputError(f"{key} needs a non-empty list of filters")
            subs = [translate_where(keys, sub) for sub in cond]
            parts.append(subs[0] if len(subs) == 1 else {key: subs})
        elif not isinstance(key, str):
            raise InvalidInputError(f"filter keys must be str, got {type(key).__name__}")
        else:
            parts.append(_clause(keys, key, cond))
    return parts[0] if len(parts) == 1 else {"$and": parts}


def check_where(where: object) -> Mapping[str, Any] | None:
    """Validate a caller's filter (None for no filter); raises what :func:`translate_where` does."""
    if where is None:
        return None
    translate_where(_SHAPE_KEYS, where)
    assert isinstance(where, Mapping)
    return where


def matches(where: Mapping[str, Any], metadata: Mapping[str, MetadataValue]) -> bool:
    """Whether plaintext ``metadata`` passes a filter checked by :func:`check_where`.

    Means what the chromadb tag filter means: values compare as :func:`canonical_value` does
    (``1 == 1.0``, ``True != 1``), and ``$ne`` / ``$nin`` also match a memory without the key.
    """
    for key, cond in where.items():
        if key == "$and":
            ok = all(matches(sub, metadata) for sub in cond)
        elif key == "$or":
            ok = any(matches(sub, metadata) for sub in cond)
        else:
            ok = _holds(cond, metadata.get(key))
        if not ok:
            return False
    return True


def _holds(cond: Any, value: MetadataValue | None) -> bool:
    op, arg = next(iter(cond.items())) if isinstance(cond, Mapping) else ("$eq", cond)
    have = None if value is None else canonical_value(value)
    wanted = {canonical_value(v) for v in (arg if op in ("$in", "$nin") else [arg])}
    if op in ("$eq", "$in"):
        return have in wanted
    return have not in wanted  # $ne, $nin
