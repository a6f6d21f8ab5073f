"""The cloud's side of the ratio test, shared by ``InProcessVerifier`` and the reference server."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import torch

from specsteer import fusion
from specsteer._errors import ProtocolError
from specsteer.backends._base import KVStream, ModelBackend
from specsteer.cloud_adapter.protocol import TokenIds, TopK, Usage, VerifyRequest, VerifyResponse

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

    def release(self, stream: KVStream) -> None:
        """Return a stream to the pool as most recently used."""
        with self._lock:
            self._streams[self._next] = stream
            self._next += 1
            while len(self._streams) > self.size:
                self._streams.popitem(last=False)


class VerifierCore:
    """Runs the verify step for token-id requests with the cloud model.

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
            ProtocolError: the request cannot be served (text mode, ids out of range, no way to
                get ``P_S0``).
        """
        t0 = time.perf_counter()
        if not isinstance(request.prefix, TokenIds) or not isinstance(request.draft, TokenIds):
            raise ProtocolError("this verifier serves token-id requests only")
        params = request.params
        prefix, draft = list(request.prefix.ids), list(request.draft.ids)
        vocab = self.llm.vocab_size
        if any(i >= vocab for i in prefix + draft):
            raise ProtocolError(f"token ids must be below the cloud vocabulary size {vocab}")
        prompt = [m.model_dump() for m in request.prompt]
        with self._lock:
            prompt_ids = self.llm.encode_chat(prompt)
            stream = self._llm_pool.acquire(prompt_ids + prefix + draft)
            try:
                rows = stream.logits(prompt_ids + prefix, draft)  # [K+1, V]
            finally:
                self._llm_pool.release(stream)
            lp_llm = fusion.log_probs(rows, params.temperature)  # [K+1, V]
            k = len(draft)
            draft_t = torch.tensor(draft, dtype=torch.long)
            gen = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
            if params.target == "llm" and params.greedy:
                n = fusion.verify_draft_exact(draft_t, rows[:k])
            else:
                lp_ctxfree = self._ctxfree(request, prompt, prefix, draft, params.temperature)
                lam = 1.0 if params.target == "llm" else params.lam
                lp_llm_draft = lp_llm[torch.arange(k), draft_t]  # [K]
                n = fusion.verify_draft(lp_llm_draft, lp_ctxfree, lam, params.greedy, gen)
        values, ids = torch.topk(lp_llm[n], min(params.top_k, lp_llm.shape[-1]))
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=n,
            top_k=TopK(ids=ids.tolist(), logprobs=[min(0.0, v) for v in values.tolist()]),
            usage=Usage(server_ms=(time.perf_counter() - t0) * 1000, tokens_scored=k + 1),
        )

    def _ctxfree(
        self,
        request: VerifyRequest,
        prompt: list[dict[str, str]],
        prefix: list[int],
        draft: list[int],
        temperature: float,
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
        stream = self._slm_pool.acquire(ids + prefix + draft)
        try:
            rows = stream.logits(ids + prefix, draft)[:-1]  # [K, V]
        finally:
            self._slm_pool.release(stream)
        lp = fusion.log_probs(rows, temperature)
        return lp[torch.arange(len(draft)), torch.tensor(draft)].double()
