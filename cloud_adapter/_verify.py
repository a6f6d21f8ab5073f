"""The cloud's side of the ratio test (and of ``cloud_only`` generation), shared by
``InProcessVerifier`` and the reference server."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import torch

from specsteer import fusion
from specsteer._errors import ProtocolError
from specsteer.backends._base import KVStream, ModelBackend
from specsteer.cloud_adapter import _text
from specsteer.cloud_adapter._generate import generate_answer
from specsteer.cloud_adapter.protocol import (
    GenerateRequest,
    GenerateResponse,
    Text,
    TokenIds,
    TopK,
    Usage,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["StreamPool", "VerifierCore"]


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
        """Score the draft with the cloud model, run the ratio test, return the top-k.

        Raises:
            ProtocolError: the request cannot be served (ids out of range, no way to get
                ``P_S0``, a model that returns non-finite scores).
        """
        t0 = time.perf_counter()
        if isinstance(request.prefix, Text) and isinstance(request.draft, Text):
            return self._verify_text(request, request.prefix, request.draft, t0)
        if not isinstance(request.prefix, TokenIds) or not isinstance(request.draft, TokenIds):
            raise ProtocolError("prefix and draft must both be token ids or both be text")
        params = request.params
        mine = self.llm.tokenizer_fingerprint()
        if request.tokenizer is not None and mine is not None and request.tokenizer != mine:
            raise ProtocolError(
                "the device's tokenizer differs from this cloud model's, so token ids would be "
                "misread; send text instead (wire='text', cross-vocabulary mode)"
            )
        prefix, draft = list(request.prefix.ids), list(request.draft.ids)
        vocab = self.llm.vocab_size
        if any(i >= vocab for i in prefix + draft):
            raise ProtocolError(f"token ids must be below the cloud vocabulary size {vocab}")
        prompt = [m.model_dump() for m in request.prompt]
        with self._lock:
            prompt_ids = self.llm.encode_chat(prompt)
            rows = self._llm_pool.logits(prompt_ids + prefix, draft)  # [K+1, V]
            lp_llm = fusion.processed_log_probs(rows, prefix, params.processing, draft)
            k = len(draft)
            draft_t = torch.tensor(draft, dtype=torch.long)
            lp_ctxfree = None
            if not params.uses_argmax:
                lp_ctxfree = self._ctxfree(request, prompt, prefix, draft)
            n = params.ratio_test(
                lp_llm[torch.arange(k), draft_t],  # [K]
                lp_ctxfree,
                argmax_matches=rows[:k].argmax(dim=-1) == draft_t,  # [K]
            )
        _check_finite(lp_llm[n])
        values, ids = torch.topk(lp_llm[n], min(params.top_k, lp_llm.shape[-1]))
        keep = torch.isfinite(values)  # -inf: tokens the model rules out are no candidates
        values, ids = values[keep], ids[keep]
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=n,
            top_k=TopK(ids=ids.tolist(), logprobs=[min(0.0, v) for v in values.tolist()]),
            usage=Usage(server_ms=(time.perf_counter() - t0) * 1000, tokens_scored=k + 1),
        )

    def generate(self, request: GenerateRequest) -> GenerateResponse:
        """The cloud model's own answer to the public prompt (``cloud_only``)."""
        with self._lock:
            return generate_answer(self.llm, request)

    def _verify_text(
        self, request: VerifyRequest, prefix: Text, draft: Text, t0: float
    ) -> VerifyResponse:
        """Cross-vocabulary mode (see :mod:`specsteer.cloud_adapter._text`)."""
        params = request.params
        if request.ctxfree_logprobs is None and request.n_draft:
            raise ProtocolError(
                "a text request needs ctxfree_logprobs (the device's context-free scores of its "
                "own tokens); send them with ctxfree_source='device'"
            )
        llm = self.llm
        p_text, full = prefix.text, prefix.text + draft.text
        unit_ends = [len(p_text) + o for o in draft.offsets]
        prompt = [m.model_dump() for m in request.prompt]
        eos_ids = sorted(llm.eos_token_ids)
        with self._lock:
            prompt_ids = llm.encode_chat(prompt)
            ids, j0, ends = _text.cloud_tokens(llm, full, len(p_text))
            segs = _text.segments(unit_ends, j0, ends)
            block = ids[j0:]
            n_text_units = len(draft.offsets)
            # The end-of-answer unit is judged only right after a fully aligned draft.
            eos_seg = draft.eos and (
                (segs and segs[-1].unit_hi == n_text_units and segs[-1].tok_hi == len(block))
                or (n_text_units == 0 and j0 == len(ids) and eos_ids)
            )
            if eos_seg:
                segs.append(
                    _text.Segment(
                        n_text_units, n_text_units + 1, len(block), len(block) + 1, len(full)
                    )
                )
                block = [*block, eos_ids[0]]
            rows = self._llm_pool.logits(prompt_ids + ids[:j0], block)  # [len(block)+1, V]
            lp_llm = fusion.processed_log_probs(rows, ids[:j0], params.processing, block)
            _check_finite(lp_llm)
            lp_tok = lp_llm[
                torch.arange(len(block)), torch.tensor(block, dtype=torch.long)
            ].double()
            if eos_seg:  # P_L(end of answer): every end token counts
                lp_tok[-1] = torch.logsumexp(lp_llm[len(block) - 1, eos_ids].double(), 0)
            argmax = lp_llm[: len(block)].argmax(dim=-1).tolist()
            matches = [
                a == b or (a in eos_ids and b in eos_ids)
                for a, b in zip(argmax, block, strict=True)
            ]
            ctxfree = torch.tensor(request.ctxfree_logprobs or [], dtype=torch.float64)
            n_seg = _text.accept_segments(segs, lp_tok, ctxfree, matches, params)
            n_accepted = segs[n_seg - 1].unit_hi if n_seg else 0
            tok_pos = segs[n_seg - 1].tok_hi if n_seg else 0
            char_pos = segs[n_seg - 1].end if n_seg else len(p_text)
            context_ids = ids[: j0 + tok_pos]
            row = lp_llm[tok_pos]
            if not n_seg and ends[j0] < char_pos:
                # The prefix ends inside one of the cloud's tokens of prefix + draft: read the
                # prefix alone, so that the candidates start exactly where the draft did.
                context_ids = llm.encode(p_text)
                logits = self._llm_pool.logits(prompt_ids + context_ids)[0]
                row = fusion.processed_log_probs(logits, context_ids, params.processing)
                _check_finite(row)
            strings, logprobs = _text.candidate_strings(
                llm, row, prompt_ids + context_ids, params.top_k
            )
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=n_accepted,
            top_k=TopK(strings=strings, logprobs=logprobs),
            usage=Usage(server_ms=(time.perf_counter() - t0) * 1000, tokens_scored=len(block) + 1),
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


def _check_finite(lp: torch.Tensor) -> None:
    if torch.isnan(lp).any():
        raise ProtocolError(
            "the cloud model produced NaN scores: a temperature this close to 0 overflows "
            "(use a larger temperature, or greedy=True), or the model's weights are broken"
        )
