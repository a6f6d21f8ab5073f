"""``POST /v1/completions``: the subset of vLLM's completions API that the OpenAI-compatible
adapter uses, in vLLM's response shape, so that adapter runs over real HTTP in the tests.

``prompt`` as text, token ids or a batch of texts; ``max_tokens``, ``echo``, ``logprobs``,
``prompt_logprobs``, ``return_tokens_as_token_ids``, ``temperature``, ``seed``. Log-probabilities
are the raw model's (vLLM's ``raw_logprobs`` mode); ``-inf`` is written as -9999, as vLLM does.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from specsteer import fusion
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._apierror import ApiError
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._verify import StreamPool

__all__ = ["CompletionRequest", "Completions", "merge_batch"]


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
    seed: int | None = Field(default=None, ge=0, lt=2**63)
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


def _lp(value: float) -> float:
    """A log-probability as vLLM writes it: ``-inf`` clamped to -9999."""
    return max(float(value), -9999.0)


class Completions:
    """Runs completion requests on the cloud model, vLLM style."""

    def __init__(self, llm: ModelBackend, limits: ServerLimits, model_name: str, pool_size: int):
        self.llm = llm
        self.limits = limits
        self.model_name = model_name
        self.pool = StreamPool(llm, pool_size)

    def check(self, req: CompletionRequest) -> list[int]:
        """Token ids of the prompt, after checking the request against the limits."""
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

    def run(self, req: CompletionRequest, ids: list[int]) -> dict[str, Any]:
        """Score (and optionally extend) the prompt; build vLLM's response dict."""
        need_rows = req.prompt_logprobs is not None or (req.echo and req.logprobs is not None)
        if need_rows:
            # Every position's distribution is needed: encode the whole prompt (as vLLM does
            # for prompt_logprobs, which bypass its prefix cache).
            stream = self.llm.stream()
            rows = fusion.log_probs(stream.logits(ids[:1], ids[1:]))  # [P, V]
            last = rows[-1]
        else:
            stream = self.pool.acquire(ids)
            rows = None
        try:
            if rows is None:
                last = fusion.log_probs(stream.logits(ids)[0])  # [V]
            gen = torch.Generator().manual_seed(req.seed) if req.seed is not None else None
            eos = self.llm.eos_token_ids
            out: list[int] = []
            out_rows: list[torch.Tensor] = []
            finish = "length"
            while len(out) < req.max_tokens:
                scores = last.double() / req.temperature if req.temperature > 0 else last
                if req.temperature == 0 or not torch.isfinite(scores.max()):
                    # temperature -> 0 is the argmax (also where the division underflows)
                    tok = int(torch.argmax(last).item())
                else:
                    tok = fusion.sample_or_argmax(scores, False, gen)
                out.append(tok)
                out_rows.append(last)
                if tok in eos:
                    finish = "stop"
                    break
                if len(out) < req.max_tokens:
                    last = fusion.log_probs(stream.logits(ids + out)[0])
        finally:
            if rows is None:
                self.pool.release(stream)
        prompt_lp = None
        if req.prompt_logprobs is not None:
            assert rows is not None
            n_prompt = self._count(req.prompt_logprobs)
            prompt_lp = [None] + [
                self._entry(rows[j - 1], ids[j], n_prompt) for j in range(1, len(ids))
            ]
        logprobs = None
        if req.logprobs is not None:
            if req.echo:
                assert rows is not None
                toks = ids + out
                steps: list[torch.Tensor | None] = [None, *rows[:-1], *out_rows]
            else:
                toks, steps = out, list(out_rows)
            n_top = self._count(req.logprobs)
            logprobs = self._logprobs(toks, steps, n_top, req.return_tokens_as_token_ids)
        text = self.llm.decode(out)
        if req.echo:  # vLLM echoes a text prompt as sent, and token ids decoded
            text = (req.prompt if isinstance(req.prompt, str) else self.llm.decode(ids)) + text
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                    "stop_reason": None,
                    "prompt_logprobs": prompt_lp,
                }
            ],
            "usage": {
                "prompt_tokens": len(ids),
                "total_tokens": len(ids) + len(out),
                "completion_tokens": len(out),
                "prompt_tokens_details": None,
            },
        }

    def _count(self, n: int) -> int:
        """A requested log-probability count; ``-1`` is the whole vocabulary, as in vLLM."""
        return self.llm.vocab_size if n == -1 else n

    def _token_str(self, tok: int, as_id: bool) -> str:
        return f"token_id:{tok}" if as_id else self.llm.decode([tok], skip_special_tokens=False)

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

    def _logprobs(
        self, toks: list[int], steps: list[torch.Tensor | None], n: int, as_id: bool
    ) -> dict[str, Any]:
        """OpenAI's ``logprobs`` object: per token its logprob and the top ``n`` (+ itself)."""
        offsets: list[int] = []
        token_lps: list[float | None] = []
        tokens: list[str] = []
        tops: list[dict[str, float] | None] = []
        pos = 0
        for tok, row in zip(toks, steps, strict=True):
            s = self._token_str(tok, as_id)
            offsets.append(pos)
            pos += len(s)
            tokens.append(s)
            if row is None:
                token_lps.append(None)
                tops.append(None)
                continue
            token_lps.append(_lp(row[tok].item()))
            top: dict[str, float] = {s: _lp(row[tok].item())}
            if n:
                values, ids = torch.topk(row, min(n, row.shape[-1]))
                for v, i in zip(values.tolist(), ids.tolist(), strict=True):
                    top.setdefault(self._token_str(i, as_id), _lp(v))
            tops.append(top)
        return {
            "text_offset": offsets,
            "token_logprobs": token_lps,
            "tokens": tokens,
            "top_logprobs": tops,
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
