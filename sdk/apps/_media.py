"""What a request body says it is."""

from __future__ import annotations

__all__ = ["is_json"]


def is_json(content_type: str) -> bool:
    """``application/json``, in any case, with or without parameters (``; charset=utf-8``);
    not a longer type that starts with it (``application/json-seq``)."""
    return content_type.partition(";")[0].strip().lower() == "application/json"
