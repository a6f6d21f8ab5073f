"""Chat Completions response bodies: a whole completion, stream chunks, usage, and the
``specsteer`` object each answer carries (what the answer cost and what left the device)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from specsteer._streaming import AnswerStream

__all__ = ["Answered", "Reply", "chunk", "completion", "specsteer_view", "sse", "usage_chunk"]


@dataclass(frozen=True)
class Reply:
    """What every body of one response shares."""

    model: str
    user: str | None
    prompt_tokens: int
    #: The stream ends with a usage chunk (``stream_options.include_usage``), so every chunk
    #: before it carries ``"usage": null``.
    usage_last: bool = False
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class Answered:
    """An answer once its stream is exhausted."""

    text: str
    completion_tokens: int
    finish_reason: str
    specsteer: dict[str, Any]

    @classmethod
    def of(cls, stream: AnswerStream, user: str | None, completion_tokens: int) -> Answered:
        return cls(stream.text, completion_tokens, _finish(stream), specsteer_view(stream, user))


def _finish(stream: AnswerStream) -> str:
    if stream.stopped_at is not None or stream.result is None:
        return "stop"
    return "length" if stream.result.finish_reason == "length" else "stop"


def specsteer_view(stream: AnswerStream, user: str | None) -> dict[str, Any]:
    """How the answer was made and what left the device (counts only, never private text);
    for an answer that ended at a stop sequence, up to the stop."""
    result, cut = stream.result, stream.cut
    privacy = result.privacy if result is not None else (cut.privacy if cut else None)
    stats = result.stats if result is not None else (cut.stats if cut else None)
    return {
        "user": user,
        "method": stats.method if stats else None,
        "acceptance_rate": round(stats.acceptance_rate, 4) if stats else None,
        "rounds": len(stats.rounds) if stats else None,
        "drafted_tokens": stats.drafted_tokens if stats else None,
        "accepted_tokens": stats.accepted_tokens if stats else None,
        "local_rounds": stats.local_rounds if stats else None,
        "cloud_calls": stats.cloud_calls if stats else None,
        "fallback": stats.fallback if stats else None,
        "payloads": privacy.payloads if privacy else 0,
        "bytes_sent": privacy.bytes_sent if privacy else (stats.bytes_sent if stats else 0),
        "bytes_received": privacy.bytes_received if privacy else None,
        "audit_seqs": list(privacy.audit_seqs) if privacy else [],
        "spans_kept_local": privacy.spans_kept_local if privacy else 0,
        "spans_pseudonymized": privacy.spans_pseudonymized if privacy else 0,
        "remembered": list(result.remembered if result else (cut.remembered if cut else ())),
        "stopped_at": stream.stopped_at,
    }


def _usage(reply: Reply, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": reply.prompt_tokens + completion_tokens,
    }


def completion(reply: Reply, answer: Answered) -> dict[str, Any]:
    """A whole ``chat.completion``."""
    message = {"role": "assistant", "content": answer.text, "refusal": None}
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": _usage(reply, answer.completion_tokens),
        "system_fingerprint": None,
        "specsteer": answer.specsteer,
    }


def chunk(
    reply: Reply,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    specsteer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; the one with the finish reason carries the ``specsteer``
    object."""
    body: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if reply.usage_last:
        body["usage"] = None
    if specsteer is not None:
        body["specsteer"] = specsteer
    return body


def usage_chunk(reply: Reply, completion_tokens: int) -> dict[str, Any]:
    """The chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
    body = chunk(reply, {})
    body["choices"] = []
    body["usage"] = _usage(reply, completion_tokens)
    return body


def sse(body: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: {...}`` and a blank line."""
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
