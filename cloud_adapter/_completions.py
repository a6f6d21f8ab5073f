"""``POST /v1/completions``: the subset of vLLM's completions API that the OpenAI-compatible
adapter uses, in vLLM's response shape, so that adapter runs over real HTTP in the tests.

``prompt`` as text, token ids or a batch of texts (at most ``ServerLimits.max_batch``, their
tokens counted together); ``max_tokens``, ``echo``, ``logprobs``, ``prompt_logprobs``,
``return_tokens_as_token_ids``, ``temperature``, ``top_p``, ``seed``, ``ignore_eos``. The
sampling settings vLLM has and this server does not (penalties, ``top_k``, ``min_p``) are
accepted at their neutral values and refused otherwise. Log-probabilities are the raw model's
(vLLM's ``raw_logprobs`` mode); ``-inf`` is written as -9999, as vLLM does.

The work stops at the request's deadline: it is checked between prompts, between blocks of
prompt positions and between generated tokens. Log-probabilities of a whole prompt are computed
``ServerLimits.logprob_rows`` positions per pass, so one pass holds that many vocabulary rows,
never the prompt's length times the vocabulary.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from specsteer import fusion
from specsteer.backends._base import KVStream, ModelBackend
from specsteer.cloud_adapter._apierror import ApiError
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._runner import Deadline
from specsteer.cloud_adapter._verify import StreamPool

__all__ = ["CompletionRequest", "Completions"]

#: vLLM's sampling settings this server does not implement, with their neutral values.
_NEUTRAL = {
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_k": -1,
    "min_p": 0.0,
}


class CompletionRequest(BaseModel):
    """The subset of vLLM's ``/v1/completions`` request this server implements.

    As in vLLM, fields it does not know are accepted and ignored, and ``-1`` log-probabilities
    mean the whole vocabulary (refused unless ``max_logprobs`` allows that many).
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, max_length=256)
    prompt: str | list[Annotated[int, Field(ge=0)]] | list[str] = Field(
        description="Text, token ids of the served tokenizer, or a batch of texts (one choice "
        "each, as vLLM answers)."
    )
    max_tokens: int = Field(default=16, ge=0)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=-1)
    prompt_logprobs: int | None = Field(default=None, ge=-1)
    temperature: float = Field(default=1.0, ge=0.0, le=100.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    ignore_eos: bool = False
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_k: int = -1
    min_p: float = 0.0
    n: Literal[1] = 1
    stream: Literal[False] = False
    return_tokens_as_token_ids: bool = False
    add_special_tokens: bool = Field(
        default=True,
        description="vLLM's flag; this server never adds special tokens to a text prompt, as "
        "vLLM with add_special_tokens=false (the adapter sends false).",
    )

    @field_validator("temperature")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v

    @field_validator(*_NEUTRAL)
    @classmethod
    def _neutral(cls, v: float, info: Any) -> float:
        if v != _NEUTRAL[info.field_name]:
            raise ValueError(
                f"this server does not implement {info.field_name}; send "
                f"{_NEUTRAL[info.field_name]} (its neutral value) or leave it out"
            )
        return v

    def parts(self) -> list[CompletionRequest]:
        """One request per prompt (a batch of texts is split; anything else is one prompt)."""
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            return [self.model_copy(update={"prompt": p}) for p in self.prompt]
        return [self]


def _lp(value: float) -> float:
    """A log-probability as vLLM writes it: ``-inf`` clamped to -9999."""
    return max(float(value), -9999.0)


@dataclass
class _Record:
    """What the answer reports about a run of tokens: vLLM's ``logprobs`` columns and, for a
    prompt, its ``prompt_logprobs`` entries."""

    tokens: list[int] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    entries: list[dict[str, dict[str, Any]] | None] = field(default_factory=list)


class Completions:
    """Runs completion requests on the cloud model, vLLM style.

    Args:
        llm: the served model.
        limits: request bounds (batch size, tokens, log-probabilities, rows per pass).
        model_name: the name requests must ask for.
        pool_size: KV streams kept for prompts that need no log-probabilities of their own.
    """

    def __init__(self, llm: ModelBackend, limits: ServerLimits, model_name: str, pool_size: int):
        self.llm = llm
        self.limits = limits
        self.model_name = model_name
        self.pool = StreamPool(llm, pool_size)

    def answer(self, req: CompletionRequest, deadline: Deadline) -> dict[str, Any]:
        """vLLM's response to ``req``: every prompt checked first, then run in turn."""
        parts = req.parts()
        if len(parts) > self.limits.max_batch:
            raise ApiError(
                400,
                f"the request holds {len(parts)} prompts; this server takes at most "
                f"{self.limits.max_batch} in one request",
            )
        ids = [self.check(p) for p in parts]
        total = sum(len(i) + p.max_tokens for i, p in zip(ids, parts, strict=True))
        if total > self.limits.max_tokens:
            raise ApiError(
                400,
                f"the prompts and their max_tokens hold {total} tokens together, over the "
                f"server's limit of {self.limits.max_tokens}",
            )
        answers = []
        for part, part_ids in zip(parts, ids, strict=True):
            deadline.check()
            answers.append(self.run(part, part_ids, deadline))
        return answers[0] if len(answers) == 1 else merge_batch(answers)

    def check(self, req: CompletionRequest) -> list[int]:
        """Token ids of one prompt, after checking the request against the limits."""
        lim = self.limits
        if req.model is not None and req.model != self.model_name:
            raise ApiError(
                404,
                f"model {req.model!r} is not served here; use {self.model_name!r}",
                "model_not_found",
            )
        vocab = self.llm.vocab_size
        for name, value in (("logprobs", req.logprobs), ("prompt_logprobs", req.prompt_logprobs)):
            n = vocab if value == -1 else value
            if n is not None and n > lim.max_logprobs:
                raise ApiError(
                    400,
                    f"Requested {name} of {n}, which is greater than max allowed: "
                    f"{lim.max_logprobs}",
                )
        if req.max_tokens > lim.max_completion_tokens:
            raise ApiError(400, f"max_tokens must be <= {lim.max_completion_tokens}")
        if isinstance(req.prompt, str):
            if len(req.prompt) > lim.max_tokens * 64:
                raise ApiError(400, f"the prompt is longer than {lim.max_tokens} tokens")
            ids = self.llm.encode(req.prompt)
        else:
            ids = [int(i) for i in req.prompt]  # a batch of texts is split before this
            bad = next((i for i in ids if i >= vocab), None)
            if bad is not None:
                raise ApiError(400, f"prompt token id {bad} is outside the vocabulary ({vocab})")
        if not ids:
            raise ApiError(400, "the prompt is empty")
        if len(ids) + req.max_tokens > lim.max_tokens:
            raise ApiError(
                400, f"prompt ({len(ids)} tokens) + max_tokens exceeds {lim.max_tokens} tokens"
            )
        return ids

    def run(self, req: CompletionRequest, ids: list[int], deadline: Deadline) -> dict[str, Any]:
        """Score (and optionally extend) one prompt; build vLLM's response dict."""
        prompt = _Record()
        if req.prompt_logprobs is not None or (req.echo and req.logprobs is not None):
            # Every position's distribution is needed: read the whole prompt (as vLLM does for
            # prompt_logprobs, which bypass its prefix cache), a block of positions at a time.
            stream = self.llm.stream()
            logits = self._scan(req, ids, stream, prompt, deadline)
            pooled = False
        else:
            stream, pooled = self.pool.acquire(ids), True
            logits = stream.logits(ids)[0]
        try:
            out, finish = self._decode(req, ids, stream, logits, deadline)
        finally:
            if pooled:
                self.pool.release(stream)
        return self._response(req, ids, prompt, out, finish)

    def _scan(
        self,
        req: CompletionRequest,
        ids: list[int],
        stream: KVStream,
        record: _Record,
        deadline: Deadline,
    ) -> torch.Tensor:
        """Record every prompt position's log-probabilities, ``logprob_rows`` positions per
        pass; returns the raw logits after the whole prompt (``[V]``)."""
        n_prompt = None if req.prompt_logprobs is None else self._count(req.prompt_logprobs)
        shown = req.echo and req.logprobs is not None  # the prompt's tokens in ``logprobs``
        n_top = self._count(req.logprobs) if shown and req.logprobs is not None else None
        record.entries.append(None)
        self._note(record, ids[0], None, n_top, req.return_tokens_as_token_ids)
        lo = 1
        while True:
            deadline.check()
            hi = min(len(ids), lo + self.limits.logprob_rows)
            logits = stream.logits(ids[:lo], ids[lo:hi])  # [hi - lo + 1, V]
            rows = fusion.log_probs(logits)
            for r, tok in enumerate(ids[lo:hi]):
                if n_prompt is not None:
                    record.entries.append(self._entry(rows[r], tok, n_prompt))
                self._note(record, tok, rows[r], n_top, req.return_tokens_as_token_ids)
            if hi == len(ids):
                return logits[-1]
            lo = hi

    def _decode(
        self,
        req: CompletionRequest,
        ids: list[int],
        stream: KVStream,
        logits: torch.Tensor,
        deadline: Deadline,
    ) -> tuple[_Record, str]:
        """Up to ``max_tokens`` tokens after the prompt, sampled as ``cloud_only`` samples."""
        gen = torch.Generator().manual_seed(req.seed) if req.seed is not None else None
        eos = self.llm.eos_token_ids
        n_top = None if req.logprobs is None else self._count(req.logprobs)
        out = _Record()
        while len(out.tokens) < req.max_tokens:
            deadline.check()
            greedy = req.temperature == 0
            scores = fusion.log_probs(logits, 1.0 if greedy else req.temperature)
            if req.ignore_eos and eos:
                scores[torch.tensor(sorted(eos), dtype=torch.long)] = -torch.inf
            tok = fusion.draft_token(scores, greedy, gen, req.top_p)
            self._note(out, tok, fusion.log_probs(logits), n_top, req.return_tokens_as_token_ids)
            if tok in eos and not req.ignore_eos:
                return out, "stop"
            if len(out.tokens) < req.max_tokens:
                logits = stream.logits(ids + out.tokens)[0]
        return out, "length"

    def _response(
        self, req: CompletionRequest, ids: list[int], prompt: _Record, out: _Record, finish: str
    ) -> dict[str, Any]:
        logprobs = None
        if req.logprobs is not None:
            shown = _Record(
                tokens=prompt.tokens + out.tokens,
                token_logprobs=prompt.token_logprobs + out.token_logprobs,
                top_logprobs=prompt.top_logprobs + out.top_logprobs,
            )
            logprobs = self._logprobs(shown if req.echo else out, req.return_tokens_as_token_ids)
        text = self.llm.decode(out.tokens)
        if req.echo:  # vLLM echoes a text prompt as sent, and token ids decoded
            text = (req.prompt if isinstance(req.prompt, str) else self.llm.decode(ids)) + text
        choice = {
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish,
            "stop_reason": None,
            "prompt_logprobs": prompt.entries if req.prompt_logprobs is not None else None,
        }
        n_out = len(out.tokens)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(ids),
                "total_tokens": len(ids) + n_out,
                "completion_tokens": n_out,
                "prompt_tokens_details": None,
            },
        }

    def _count(self, n: int) -> int:
        """A requested log-probability count; ``-1`` is the whole vocabulary, as in vLLM."""
        return self.llm.vocab_size if n == -1 else n

    def _token_str(self, tok: int, as_id: bool) -> str:
        return f"token_id:{tok}" if as_id else self.llm.decode([tok], skip_special_tokens=False)

    def _note(
        self, record: _Record, tok: int, row: torch.Tensor | None, n: int | None, as_id: bool
    ) -> None:
        """Append one token to ``record``: its log-probability and the top ``n`` (+ itself)."""
        record.tokens.append(tok)
        if row is None or n is None:
            record.token_logprobs.append(None)
            record.top_logprobs.append(None)
            return
        record.token_logprobs.append(_lp(row[tok].item()))
        top: dict[str, float] = {self._token_str(tok, as_id): _lp(row[tok].item())}
        if n:
            values, ids = torch.topk(row, min(n, row.shape[-1]))
            for v, i in zip(values.tolist(), ids.tolist(), strict=True):
                top.setdefault(self._token_str(i, as_id), _lp(v))
        record.top_logprobs.append(top)

    def _entry(self, row: torch.Tensor, tok: int, n: int) -> dict[str, dict[str, Any]]:
        """vLLM's prompt-logprobs entry: the actual token first, then the top ``n``."""
        entry: dict[str, dict[str, Any]] = {}
        rank = int((row > row[tok]).sum().item()) + 1
        entry[str(tok)] = {
            "logprob": _lp(row[tok].item()),
            "rank": rank,
            "decoded_token": self.llm.decode([tok], skip_special_tokens=False),
        }
        if n:
            values, top = torch.topk(row, min(n, row.shape[-1]))
            for r, (v, i) in enumerate(zip(values.tolist(), top.tolist(), strict=True), start=1):
                entry.setdefault(
                    str(i),
                    {
                        "logprob": _lp(v),
                        "rank": r,
                        "decoded_token": self.llm.decode([i], skip_special_tokens=False),
                    },
                )
        return entry

    def _logprobs(self, record: _Record, as_id: bool) -> dict[str, Any]:
        """OpenAI's ``logprobs`` object for the tokens of ``record``."""
        offsets: list[int] = []
        tokens: list[str] = []
        pos = 0
        for tok in record.tokens:
            s = self._token_str(tok, as_id)
            offsets.append(pos)
            pos += len(s)
            tokens.append(s)
        return {
            "text_offset": offsets,
            "token_logprobs": record.token_logprobs,
            "tokens": tokens,
            "top_logprobs": record.top_logprobs,
        }


def merge_batch(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer for a batch of prompts: their choices in order, usage summed (as vLLM)."""
    out = dict(answers[0])
    out["choices"] = [{**a["choices"][0], "index": i} for i, a in enumerate(answers)]
    keys = ("prompt_tokens", "total_tokens", "completion_tokens")
    out["usage"] = {
        **answers[0]["usage"],
        **{k: sum(a["usage"][k] for a in answers) for k in keys},
    }
    return out
