"""The cloud's side of the ratio test (and of ``cloud_only`` generation), shared by
``InProcessVerifier`` and the reference server."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from specsteer import fusion
from specsteer._errors import ProtocolError
from specsteer.backends._base import KVStream, ModelBackend
from specsteer.cloud_adapter import _text
from specsteer.cloud_adapter._generate import generate_answer
from specsteer.cloud_adapter.protocol import (
    DraftScores,
    GenerateRequest,
    GenerateResponse,
    Samples,
    Text,
    TokenIds,
    TopK,
    Usage,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["StreamPool", "VerifierCore", "scored_ids"]

T = TypeVar("T")


class StreamPool:
    """KV streams reused by token prefix: a request continues the stream sharing most of it.

    Bounded (LRU): at most ``size`` streams, each holding one sequence's cache.
    """

    def __init__(self, backend: ModelBackend, size: int = 4) -> None:
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.backend = backend
        self.size = size
        self._streams: OrderedDict[int, KVStream] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    def acquire(self, ids: list[int]) -> KVStream:
        """Take the stream with the longest common prefix with ``ids`` (or a fresh one)."""
        with self._lock:
            best_key, best_len = None, 0
            for key, stream in self._streams.items():
                n = stream.common_prefix(ids)
                if n > best_len:
                    best_key, best_len = key, n
            if best_key is not None:
                return self._streams.pop(best_key)
            if len(self._streams) >= self.size:
                self._streams.popitem(last=False)
            return self.backend.stream()

    def logits(self, context: list[int], block: list[int] | tuple[()] = ()) -> torch.Tensor:
        """``KVStream.logits`` on the pooled stream that shares most of ``context + block``."""
        stream = self.acquire([*context, *block])
        try:
            return stream.logits(context, block)
        finally:
            self.release(stream)

    def release(self, stream: KVStream) -> None:
        """Return a stream to the pool as most recently used."""
        with self._lock:
            self._streams[self._next] = stream
            self._next += 1
            while len(self._streams) > self.size:
                self._streams.popitem(last=False)


class VerifierCore:
    """Runs the verify step with the cloud model, for token-id and for text requests.

    Args:
        llm: the cloud model.
        slm: a copy of the public device model, for requests that carry no
            ``ctxfree_logprobs`` (the cloud computes ``P_S0`` itself).
        pool_size: KV streams kept per model.
    """

    def __init__(self, llm: ModelBackend, slm: ModelBackend | None = None, *, pool_size: int = 4):
        self.llm = llm
        self.slm = slm
        self._llm_pool = StreamPool(llm, pool_size)
        self._slm_pool = StreamPool(slm, pool_size) if slm is not None else None
        # One forward pass at a time per model: torch modules are not re-entrant-safe here.
        self._lock = threading.Lock()

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        """Score the draft with the cloud model, judge it, return the top-k at the rejection.

        Raises:
            ProtocolError: the request cannot be served (ids out of range, no way to get
                ``P_S0``, a model that returns non-finite scores).
        """
        t0 = time.perf_counter()
        if isinstance(request.prefix, Text) and isinstance(request.draft, Text):
            return self._verify_text(request, request.prefix, request.draft, t0)
        if not isinstance(request.prefix, TokenIds) or not isinstance(request.draft, TokenIds):
            raise ProtocolError("prefix and draft must both be token ids or both be text")
        return self._verify_ids(request, list(request.prefix.ids), list(request.draft.ids), t0)

    def _verify_ids(
        self, request: VerifyRequest, prefix: list[int], draft: list[int], t0: float
    ) -> VerifyResponse:
        """Token-id mode: one block pass over the draft, then :func:`fusion.judge`."""
        params = request.params
        mine = self.llm.tokenizer_fingerprint()
        if request.tokenizer is not None and mine is not None and request.tokenizer != mine:
            raise ProtocolError(
                "the device's tokenizer differs from this cloud model's, so token ids would be "
                "misread; send text instead (wire='text', cross-vocabulary mode)"
            )
        vocab = self.llm.vocab_size
        if any(i >= vocab for i in prefix + draft):
            raise ProtocolError(f"token ids must be below the cloud vocabulary size {vocab}")
        prompt = [m.model_dump() for m in request.prompt]
        with self._lock:
            prompt_ids = self.llm.encode_chat(prompt)
            rows = self._llm_pool.logits(prompt_ids + prefix, draft)  # [K+1, V]
            lp_llm = fusion.processed_log_probs(rows, prefix, params.processing, draft)
            scored = scored_ids(lp_llm, draft, params.top_k)
            if params.verdict == "device":
                return _scores(request, scored, t0)
            lp_ctxfree = None
            if not params.uses_argmax:
                lp_ctxfree = self._ctxfree(request, prompt, prefix, draft)
            verdict = params.judge(scored, lp_ctxfree)
        ids, logprobs = verdict.top_k
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=verdict.n_accepted,
            top_k=TopK(ids=ids, logprobs=logprobs),
            samples=_samples(lp_llm[verdict.n_accepted], params),
            usage=_usage(t0, len(draft)),
        )

    def generate(
        self, request: GenerateRequest, check: Callable[[], None] = lambda: None
    ) -> GenerateResponse:
        """The cloud model's own answer to the public prompt (``cloud_only``); ``check`` is
        called before each token (a server's deadline)."""
        with self._lock:
            return generate_answer(self.llm, request, check)

    def _verify_text(
        self, request: VerifyRequest, prefix: Text, draft: Text, t0: float
    ) -> VerifyResponse:
        """Cross-vocabulary mode (see :mod:`specsteer.cloud_adapter._text`)."""
        if request.ctxfree_logprobs is None and request.n_draft:
            raise ProtocolError(
                "a text request needs ctxfree_logprobs (the device's context-free scores of its "
                "own tokens); send them with ctxfree_source='device'"
            )
        prompt = [m.model_dump() for m in request.prompt]
        with self._lock:
            prompt_ids = self.llm.encode_chat(prompt)
            text = _TextBlock.of(self.llm, prefix, draft)
            rows = self._llm_pool.logits(prompt_ids + text.before, text.block)  # [T+1, V]
            processing = request.params.processing
            lp_llm = fusion.processed_log_probs(rows, text.before, processing, text.block)
            _check_finite(lp_llm)

            def candidates(i: int) -> tuple[list[str], list[float]]:
                return self._text_candidates(request, prompt_ids, text, lp_llm, i)

            ctxfree = torch.tensor(request.ctxfree_logprobs or [], dtype=torch.float64)
            verdict = request.params.judge(text.scored(lp_llm, candidates), ctxfree)
        strings, logprobs = verdict.top_k
        n_seg = verdict.n_accepted
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=text.segs[n_seg - 1].unit_hi if n_seg else 0,
            top_k=TopK(strings=strings, logprobs=logprobs),
            judged=text.segs[n_seg].unit_hi if n_seg < len(text.segs) else None,
            usage=Usage(
                server_ms=(time.perf_counter() - t0) * 1000, tokens_scored=len(text.block) + 1
            ),
        )

    def _text_candidates(
        self,
        request: VerifyRequest,
        prompt_ids: list[int],
        text: _TextBlock,
        lp_llm: torch.Tensor,
        n_seg: int,
    ) -> tuple[list[str], list[float]]:
        """The cloud's next-token strings at the start of segment ``n_seg``."""
        tok_pos = text.segs[n_seg - 1].tok_hi if n_seg else 0
        context_ids = text.before + text.block[:tok_pos]
        row = lp_llm[tok_pos]
        if not n_seg and text.straddles:
            # The prefix ends inside one of the cloud's tokens of prefix + draft: read the
            # prefix alone, so that the candidates start exactly where the draft did.
            context_ids = self.llm.encode(text.prefix)
            logits = self._llm_pool.logits(prompt_ids + context_ids)[0]
            row = fusion.processed_log_probs(logits, context_ids, request.params.processing)
            _check_finite(row)
        return _text.candidate_strings(
            self.llm, row, prompt_ids + context_ids, request.params.top_k
        )

    def _ctxfree(
        self,
        request: VerifyRequest,
        prompt: list[dict[str, str]],
        prefix: list[int],
        draft: list[int],
    ) -> torch.Tensor:
        """``[K]`` log P_S0 of the draft tokens: from the request, or from the hosted copy."""
        if request.ctxfree_logprobs is not None:
            return torch.tensor(request.ctxfree_logprobs, dtype=torch.float64)
        if not draft:
            return torch.zeros(0, dtype=torch.float64)
        if self.slm is None or self._slm_pool is None:
            raise ProtocolError(
                "the request carries no ctxfree_logprobs and this cloud hosts no copy of the "
                "device model; send ctxfree_logprobs (ctxfree_source='device')"
            )
        ids = self.slm.encode_chat(prompt)
        rows = self._slm_pool.logits(ids + prefix, draft)[:-1]  # [K, V]
        lp = fusion.processed_log_probs(rows, prefix, request.params.processing, draft)
        return lp[torch.arange(len(draft)), torch.tensor(draft)].double()


def _usage(t0: float, n_draft: int) -> Usage:
    return Usage(server_ms=(time.perf_counter() - t0) * 1000, tokens_scored=n_draft + 1)


def _scores(
    request: VerifyRequest, scored: fusion.Scored[tuple[list[int], list[float]]], t0: float
) -> VerifyResponse:
    """A device-judged request's answer: the scores of every draft position, unjudged."""
    usage = _usage(t0, scored.lp_llm.shape[0])
    return VerifyResponse.unjudged(request.request_id, DraftScores.of(scored), usage)


def scored_ids(
    lp_llm: torch.Tensor, draft: list[int], top_k: int
) -> fusion.Scored[tuple[list[int], list[float]]]:
    """Token-id mode in the judge's shape, from the processed rows of one block pass.

    Args:
        lp_llm: ``[K+1, V]`` processed log P_L after each draft prefix.
        draft: the ``K`` draft tokens.
        top_k: candidates to return at the first rejection.
    """
    k = len(draft)
    draft_t = torch.tensor(draft, dtype=torch.long)

    def candidates(i: int) -> tuple[list[int], list[float]]:
        _check_finite(lp_llm[i])
        values, ids = torch.topk(lp_llm[i], min(top_k, lp_llm.shape[-1]))
        keep = torch.isfinite(values)  # -inf: tokens the model rules out are no candidates
        if not bool(keep.any()):
            raise ProtocolError(
                "every token is ruled out at this position (-inf after the logit processing); "
                "a no_repeat_ngram_size this small bans them all: raise it or switch it off"
            )
        return ids[keep].tolist(), [min(0.0, v) for v in values[keep].tolist()]

    return fusion.Scored(
        lp_llm=lp_llm[torch.arange(k), draft_t],  # [K]
        # The argmax of the processed distribution, the one recovery and cloud_only use.
        is_argmax=lp_llm[:k].argmax(dim=-1) == draft_t,  # [K]
        top_k=candidates,
    )


@dataclass(frozen=True)
class _TextBlock:
    """A text request laid over the cloud's tokens of ``prefix + draft``."""

    prefix: str
    before: list[int]  # cloud tokens wholly before the draft
    block: list[int]  # cloud tokens scored on top of them (and the end token, when judged)
    segs: list[_text.Segment]
    eos_ids: list[int]
    eos_seg: bool  # the end of the answer is judged as the last unit
    accepted: str  # characters of block[0] that lie in the prefix ("" when none straddles)
    backend: ModelBackend

    @property
    def straddles(self) -> bool:
        """Whether the prefix ends inside the block's first cloud token."""
        return bool(self.accepted)

    @classmethod
    def of(cls, llm: ModelBackend, prefix: Text, draft: Text) -> _TextBlock:
        full = prefix.text + draft.text
        ids, j0, ends = _text.cloud_tokens(llm, full, len(prefix.text))
        segs = _text.segments([len(prefix.text) + o for o in draft.offsets], j0, ends)
        block, eos_ids, n_units = ids[j0:], sorted(llm.eos_token_ids), len(draft.offsets)
        # The end-of-answer unit is judged only right after a fully aligned draft.
        eos_seg = bool(draft.eos) and bool(
            (segs and segs[-1].unit_hi == n_units and segs[-1].tok_hi == len(block))
            or (n_units == 0 and j0 == len(ids) and eos_ids)
        )
        if eos_seg:
            segs.append(_text.Segment(n_units, n_units + 1, len(block), len(block) + 1, len(full)))
            block = [*block, eos_ids[0]]
        accepted = full[ends[j0] : len(prefix.text)] if block else ""
        return cls(prefix.text, ids[:j0], block, segs, eos_ids, eos_seg, accepted, llm)

    def scored(self, lp_llm: torch.Tensor, candidates: Callable[[int], T]) -> fusion.Scored[T]:
        """The segments in the judge's shape, from the processed rows ``[T+1, V]``."""
        n = len(self.block)
        lp_tok = lp_llm[torch.arange(n), torch.tensor(self.block, dtype=torch.long)].double()
        if self.eos_seg:  # P_L(end of answer): every end token counts
            lp_tok[-1] = torch.logsumexp(lp_llm[n - 1, self.eos_ids].double(), 0)
        argmax = lp_llm[:n].argmax(dim=-1).tolist()
        ends = set(self.eos_ids)
        matches = [
            a == b or (a in ends and b in ends) for a, b in zip(argmax, self.block, strict=True)
        ]
        if self.straddles:
            own, best = _text.straddle(
                self.backend, lp_llm[0], self.before, self.block[0], self.accepted
            )
            lp_tok[0], matches[0] = own, best
        return _text.scored_segments(self.segs, lp_tok, matches, candidates)


def _check_finite(lp: torch.Tensor) -> None:
    if torch.isnan(lp).any():
        raise ProtocolError(
            "the cloud model produced NaN scores: a temperature this close to 0 overflows "
            "(use a larger temperature, or greedy=True), or the model's weights are broken"
        )


#: Mixed into the request's seed for the draws it asks for, apart from the ratio test's.
_SAMPLES_SEED = 0x5A3C_96E1


def _samples(lp_row: torch.Tensor, params: VerifyParams) -> Samples | None:
    """The draws from the whole ``[V]`` row that ``params.samples`` asks for (sampled mode)."""
    if not params.samples or params.greedy:
        return None
    gen = None
    if params.seed is not None:
        gen = torch.Generator().manual_seed((params.seed ^ _SAMPLES_SEED) % 2**63)
    ids, logprobs = fusion.draw_samples(lp_row, params.samples, gen)
    return Samples(ids=ids, logprobs=logprobs)
