"""What a verify request carries, as text: shared by the in-process and HTTP canary tests."""

from __future__ import annotations

import json

from specsteer.privacy import tokenize


def payload_texts(wire: bytes, decode: object) -> str:
    """Everything a payload carries, token ids decoded back to text."""
    doc = json.loads(wire)
    parts = [m["content"] for m in doc["prompt"]]
    for key in ("prefix", "draft"):
        span = doc[key]
        parts.append(decode(span["ids"]) if span["kind"] == "ids" else span["text"])  # type: ignore[operator]
    return "\n".join(parts)


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = tokenize(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
