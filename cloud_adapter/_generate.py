"""The cloud model writing an answer alone (``cloud_only``), shared by the in-process adapter and
the reference server.

Each step samples exactly as the device engine does: processed log-probabilities of the answer
so far (:func:`specsteer.fusion.processed_log_probs`), the end tokens ruled out when the answer
must run to its length, and one draw (:func:`specsteer.fusion.draft_token`) from a generator
seeded by the request, so a seeded request gives the same answer wherever it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from specsteer import fusion
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter.protocol import GenerateRequest, GenerateResponse, GenerateUsage

__all__ = ["generate_answer"]


def _rule_out(lp: torch.Tensor, eos: frozenset[int]) -> torch.Tensor:
    """``[V]`` log-probabilities with the end tokens at ``-inf``."""
    out = lp.clone()
    out[torch.tensor(sorted(eos), dtype=torch.long)] = -torch.inf
    return out


def generate_answer(
    llm: ModelBackend, request: GenerateRequest, check: Callable[[], None] = lambda: None
) -> GenerateResponse:
    """Decode up to ``request.max_new_tokens`` tokens of the cloud model's answer.

    Args:
        check: called before each token; a server passes its deadline's check, which raises
            once the request has run out of time, so the work stops there.
    """
    t0 = time.perf_counter()
    params = request.params
    gen = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
    prompt_ids = llm.encode_chat([m.model_dump() for m in request.prompt])
    eos = llm.eos_token_ids
    stream = llm.stream()
    out: list[int] = []
    while len(out) < request.max_new_tokens:
        check()
        logits = stream.logits(prompt_ids + out)[0]  # [V]
        lp = fusion.processed_log_probs(logits, out, params.processing)
        if params.ignore_eos and eos:
            lp = _rule_out(lp, eos)
        out.append(fusion.draft_token(lp, params.greedy, gen, params.top_p))
        if out[-1] in eos:
            break
    shared = request.tokenizer is not None and request.tokenizer == llm.tokenizer_fingerprint()
    return GenerateResponse(
        request_id=request.request_id,
        text=llm.decode([t for t in out if t not in eos]),
        token_ids=out if shared else None,
        finish_reason="eos" if out and out[-1] in eos else "length",
        usage=GenerateUsage(
            server_ms=(time.perf_counter() - t0) * 1000,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(out),
        ),
    )
