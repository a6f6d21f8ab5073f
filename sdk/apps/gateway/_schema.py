"""A Chat Completions request, checked and turned into one call of the assistant.

OpenAI's fields map to :class:`~specsteer.GenerationConfig`: ``max_completion_tokens`` (or
``max_tokens``) to ``max_new_tokens``; ``temperature`` 0 to greedy decoding and above 0 to
sampling at that temperature; ``top_p`` and ``seed`` as they are. Without ``temperature`` or
``top_p`` the assistant's own setting holds (greedy for the embedded pair). SpecSteer's own
settings (``method``, ``lam``, ``beta``, ``top_k``, ...) come as extra body fields. Fields the
device cannot honour (``n`` > 1, tools, log-probabilities, ...) are refused by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specsteer._config import GenerationConfig
from specsteer._errors import InvalidInputError
from specsteer.apps.gateway._errors import RequestRefused
from specsteer.memory._validate import check_unicode

__all__ = ["KNOBS", "ChatCall", "parse_call"]

#: GenerationConfig fields a request may set as extra body fields (the rest have OpenAI names).
KNOBS = tuple(
    name
    for name in GenerationConfig.model_fields
    if name not in ("max_new_tokens", "temperature", "top_p", "seed", "greedy")
)

#: OpenAI fields accepted only with a value that asks for nothing the device does not do.
_HARMLESS: dict[str, Any] = {
    "frequency_penalty": lambda v: v in (None, 0, 0.0),
    "presence_penalty": lambda v: v in (None, 0, 0.0),
    "logprobs": lambda v: v in (None, False),
    "top_logprobs": lambda v: v in (None, 0),
    "logit_bias": lambda v: not v,
    "tools": lambda v: not v,
    "functions": lambda v: not v,
    "tool_choice": lambda v: v in (None, "none", "auto"),
    "function_call": lambda v: v in (None, "none", "auto"),
    "response_format": lambda v: v is None or v == {"type": "text"},
    "modalities": lambda v: v in (None, ["text"]),
    "audio": lambda v: v is None,
    "prediction": lambda v: v is None,
    "web_search_options": lambda v: v is None,
    "moderation": lambda v: v is None,
}
#: Tools a request may offer while its choice (the value's field) says to call none.
_OFFERED = {"tools": "tool_choice", "functions": "function_call"}
#: OpenAI fields that change nothing here (caching and abuse-tracking keys, hints for other
#: models).
_IGNORED = (
    "metadata",
    "store",
    "service_tier",
    "parallel_tool_calls",
    "reasoning_effort",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
)


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # "name", "refusal", ... change nothing

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_Part] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class _Body(BaseModel):
    """The fields with OpenAI names; extras are SpecSteer's settings or refused."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str
    messages: list[_Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    user: str | None = None


@dataclass(frozen=True)
class ChatCall:
    """One request, checked: what to ask the assistant and how to answer.

    Attributes:
        model: the model the client named.
        chat: the conversation as ``{"role", "content"}`` dicts (system messages merged first).
        overrides: GenerationConfig fields for this call.
        stop: strings the answer ends before.
        stream: answer as server-sent events.
        include_usage: send a last chunk with ``usage`` (``stream_options``).
        user: the ``user`` field (whose memories), or None.
    """

    model: str
    chat: list[dict[str, str]]
    overrides: dict[str, Any]
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


def parse_call(raw: bytes, *, base: GenerationConfig, max_tokens: int) -> ChatCall:
    """Check a request body and turn it into a :class:`ChatCall`.

    Args:
        raw: the body as received.
        base: the assistant's settings (what the request's settings are checked against).
        max_tokens: the longest answer the gateway writes.

    Raises:
        RequestRefused: the body is not JSON, a field is missing, of the wrong type or out of
            range, or asks for what the device does not do.
    """
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise RequestRefused(f"the body is not valid JSON: {e}", code="invalid_json") from e
    except RecursionError:
        raise RequestRefused(
            "the body nests its JSON too deeply to read; send a flatter body", code="invalid_json"
        ) from None
    if not isinstance(doc, dict):
        raise RequestRefused("the body must be a JSON object", code="invalid_type")
    try:
        body = _Body.model_validate(doc)
    except ValidationError as e:
        raise _refusal(e) from e
    if body.stream_options is not None and not body.stream:
        raise RequestRefused(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    extras = dict(body.model_extra or {})
    knobs = _knobs(extras)
    limit = body.max_completion_tokens or body.max_tokens
    if limit is not None and limit > max_tokens:
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise RequestRefused(f"{param} must be at most {max_tokens} here", param=param)
    if body.n not in (None, 1):
        raise RequestRefused(
            "n must be 1: the device writes one answer per request",
            param="n",
            code="unsupported_value",
        )
    overrides = {**knobs, **_sampling(body), **({"max_new_tokens": limit} if limit else {})}
    _check_settings(base, overrides)
    return ChatCall(
        model=body.model,
        chat=_chat(body.messages),
        overrides=overrides,
        stop=_stops(body.stop),
        stream=bool(body.stream),
        include_usage=bool(
            body.stream and body.stream_options and body.stream_options.include_usage
        ),
        user=body.user,
    )


def _knobs(extras: dict[str, Any]) -> dict[str, Any]:
    """SpecSteer's settings among the extra fields; an OpenAI field we cannot honour, or an
    unknown one, is refused by name."""
    knobs: dict[str, Any] = {}
    for name, value in extras.items():
        if name in _OFFERED and extras.get(_OFFERED[name]) == "none":
            continue  # tools offered with the choice to call none of them
        if name in KNOBS:
            knobs[name] = value
        elif name in _HARMLESS:
            if not _HARMLESS[name](value):
                raise RequestRefused(
                    f"{name}={json.dumps(value)[:80]} is not supported by this gateway (the "
                    "device writes plain text, one answer per request); leave it out",
                    param=name,
                    code="unsupported_parameter",
                )
        elif name not in _IGNORED:
            raise RequestRefused(
                f"Unrecognized request argument supplied: {name}. SpecSteer's own settings "
                f"are: {', '.join(KNOBS)}",
                param=name,
                code="unknown_parameter",
            )
    return knobs


def _sampling(body: _Body) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body.temperature is not None:
        out["greedy"] = body.temperature == 0
        if body.temperature > 0:
            out["temperature"] = body.temperature
    if body.top_p == 0:
        out["greedy"] = True  # the smallest nucleus: the likeliest token alone
    elif body.top_p is not None:
        out["top_p"] = body.top_p
        out.setdefault("greedy", False)
    if body.seed is not None:
        out["seed"] = body.seed % 2**63  # OpenAI's seeds are signed 64-bit
    return out


#: What a request calls the GenerationConfig fields it set under another name.
_OPENAI_NAMES = {"max_new_tokens": "max_tokens", "greedy": "temperature"}


def _check_settings(base: GenerationConfig, overrides: dict[str, Any]) -> None:
    try:
        GenerationConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else None
        param = _OPENAI_NAMES.get(name or "", name)
        raise RequestRefused(
            f"Invalid value for '{param}': {first['msg']}", param=param, code="invalid_value"
        ) from e


def _chat(messages: list[_Message]) -> list[dict[str, str]]:
    system: list[str] = []
    chat: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages.[{i}]"
        if m.role in ("tool", "function"):
            raise RequestRefused(
                f"{where}: '{m.role}' messages are not supported (this gateway has no tools)",
                param=f"{where}.role",
                code="unsupported_value",
            )
        text = _text(m, where)
        try:
            check_unicode(text, what=f"{where}.content")
        except InvalidInputError as e:
            raise RequestRefused(str(e), param=f"{where}.content") from None
        if m.role in ("system", "developer"):
            system.append(text)
        else:
            chat.append({"role": m.role, "content": text})
    if not chat or chat[-1]["role"] != "user":
        raise RequestRefused("the last message must be the user's (role 'user')", param="messages")
    if any(not c["content"].strip() for c in chat if c["role"] == "user"):
        raise RequestRefused("a user message is empty; write something", param="messages")
    head = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    return head + chat


def _text(m: _Message, where: str) -> str:
    if isinstance(m.content, str):
        return m.content
    if m.content is None:
        raise RequestRefused(
            f"{where}.content is missing (tool calls are not supported)",
            param=f"{where}.content",
            code="missing_required_parameter",
        )
    parts = []
    for j, part in enumerate(m.content):
        if part.type != "text" or part.text is None:
            raise RequestRefused(
                f"{where}.content.[{j}] is of type {part.type!r}; only text is supported",
                param=f"{where}.content.[{j}].type",
                code="unsupported_value",
            )
        parts.append(part.text)
    return "\n".join(parts)


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4 or any(not s for s in stops):
        raise RequestRefused("stop takes up to 4 non-empty strings", param="stop")
    return tuple(stops)


def _refusal(e: ValidationError) -> RequestRefused:
    first = e.errors()[0]
    loc = [f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]]
    loc = [p for p in loc if p not in ("str", "list[_Part]", "list[str]", "function-after")]
    param = ".".join(loc) or None
    kind = first["type"]
    if kind == "missing":
        return RequestRefused(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if kind == "too_short" and param == "messages":
        return RequestRefused(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param=param,
            code="empty_array",
        )
    code = (
        "invalid_type" if kind.endswith("_type") or kind.endswith("_parsing") else "invalid_value"
    )
    return RequestRefused(f"Invalid '{param}': {first['msg']}.", param=param, code=code)
