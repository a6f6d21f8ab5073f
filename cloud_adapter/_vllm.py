"""vLLM's ``/v1/completions`` answer, read and checked: what both OpenAI-compatible adapters
(token ids and text) parse before they judge a draft.

``prompt_logprobs[i]`` maps token-id strings to ``{"logprob", "rank", ...}`` (the prompt token's
own entry plus the top N); a generated token's ``top_logprobs`` maps ``"token_id:N"`` to a
log-probability (``return_tokens_as_token_ids``). Every log-probability is checked finite and at
most 0 before use.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, ValidationError

from specsteer._errors import ProtocolError, summarize_validation

__all__ = [
    "SCORE_PINS",
    "Choice",
    "choices",
    "completion",
    "one_choice",
    "parse_entry",
    "parse_top",
    "ranked",
]

#: Sampling settings every request pins to their neutral values. vLLM applies a model's
#: ``generation_config.json`` defaults to any it is not sent (Qwen2.5 sets
#: ``repetition_penalty: 1.05``), and in its ``processed_logprobs`` modes those change the
#: returned scores; pinned, the scores are the raw model's and the ratio test means what it says.
SCORE_PINS: dict[str, float | int] = {
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_p": 1.0,
    "top_k": -1,
    "min_p": 0.0,
}


class Logprob(BaseModel):
    model_config = ConfigDict(extra="ignore")
    logprob: float
    rank: int | None = None


class LogProbs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    top_logprobs: list[dict[str, float] | None] | None = None
    tokens: list[str] | None = None


class Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = ""
    finish_reason: str | None = None
    logprobs: LogProbs | None = None
    prompt_logprobs: list[dict[str, Logprob] | None] | None = None


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Completion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    choices: list[Choice]
    usage: Usage | None = None


def finite_lp(value: float, where: str) -> float:
    """A returned log-probability, checked: finite and at most 0 (tiny rounding allowed)."""
    if not math.isfinite(value) or value > 1e-4:
        raise ProtocolError(f"the server returned an invalid log-probability at {where}")
    return min(0.0, value)


def parse_entry(entry: dict[str, Logprob] | None, where: str) -> dict[int, float]:
    """A ``prompt_logprobs`` entry as ``{token_id: logprob}``."""
    if not entry:
        raise ProtocolError(f"the server returned no prompt log-probabilities at {where}")
    out: dict[int, float] = {}
    for key, value in entry.items():
        try:
            tok = int(key)
        except ValueError as e:
            raise ProtocolError(f"prompt_logprobs key {key[:20]!r} at {where} is not an id") from e
        if tok < 0:
            raise ProtocolError(f"negative token id at {where}")
        out[tok] = finite_lp(value.logprob, where)
    return out


def parse_top(top: dict[str, float] | None, where: str) -> dict[int, float]:
    """A generated token's ``top_logprobs`` keyed ``token_id:N``, as ``{token_id: logprob}``."""
    if not top:
        raise ProtocolError(f"the server returned no top log-probabilities at {where}")
    out: dict[int, float] = {}
    for key, value in top.items():
        prefix, _, num = key.partition("token_id:")
        if prefix or not num.isdigit():
            raise ProtocolError(
                "the server answered with token strings, not ids; it must support "
                "return_tokens_as_token_ids (vLLM does)"
            )
        out[int(num)] = finite_lp(value, where)
    return out


def ranked(candidates: dict[int, float], k: int) -> tuple[list[int], list[float]]:
    """The ``k`` most likely candidates, best first (ties: lower id first, like ``argmax``)."""
    best = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [i for i, _ in best], [lp for _, lp in best]


def completion(data: bytes) -> Completion:
    """A completions answer, validated."""
    try:
        return Completion.model_validate_json(data)
    except ValidationError as e:
        raise ProtocolError(f"malformed completion response: {summarize_validation(e)}") from e


def choices(data: bytes) -> list[Choice]:
    """The choices of a completions answer, validated."""
    return completion(data).choices


def one_choice(data: bytes) -> Choice:
    """The single choice of a completions answer."""
    found = choices(data)
    if len(found) != 1:
        raise ProtocolError(f"expected one choice, got {len(found)}")
    return found[0]
