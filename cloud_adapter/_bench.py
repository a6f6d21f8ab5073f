"""Throughput and latency of the reference server's verify endpoint (tiny models, loopback)."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from specsteer._errors import CloudError
from specsteer.cloud_adapter._app import create_app
from specsteer.cloud_adapter._http import HttpVerifier
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._server import BackgroundServer
from specsteer.cloud_adapter._verify import VerifierCore
from specsteer.cloud_adapter.protocol import (
    ChatMessage,
    TokenIds,
    VerifyParams,
    VerifyRequest,
)

__all__ = ["ServerBenchResult", "render_markdown", "run_server_bench"]


@dataclass(frozen=True)
class ServerBenchResult:
    """What :func:`run_server_bench` measured."""

    requests: int
    concurrency: int
    draft_tokens: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    acceptance_rate: float
    model: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def run_server_bench(
    *,
    requests: int = 200,
    concurrency: int = 4,
    draft_tokens: int = 4,
    max_prefix: int = 48,
    warmup: int = 8,
    core: VerifierCore | None = None,
    seed: int = 0,
) -> ServerBenchResult:
    """Measure ``POST /v1/verify`` over loopback HTTP with ``concurrency`` client sessions.

    The server runs in a thread of this process (uvicorn on 127.0.0.1, a free port, a token);
    each client session sends rounds the way the engine does: the prefix grows by the accepted
    tokens plus one, and restarts after ``max_prefix`` tokens, so the server's prefix-keyed KV
    cache is exercised. Bounded: exactly ``requests`` timed calls (after ``warmup``).

    Args:
        requests: timed verify calls in all.
        concurrency: client sessions running at once.
        draft_tokens: K, draft tokens per request.
        max_prefix: a session's prefix length before it starts over.
        warmup: untimed calls first.
        core: the verifier core to serve (default: the tiny test model).
        seed: seed for the drafts.
    """
    if core is None:
        from specsteer.testing import tiny_backend

        core = VerifierCore(tiny_backend(1))
    token = uuid.uuid4().hex
    limits = ServerLimits(max_concurrency=max(64, 2 * concurrency))
    sessions = _Sessions(core.llm.vocab_size, draft_tokens, max_prefix, seed)
    with BackgroundServer(create_app(core, token=token, limits=limits), limits=limits) as server:
        clients = [
            HttpVerifier(server.url, token=token, timeout=60.0, retries=0)
            for _ in range(concurrency)
        ]
        try:
            sessions.run(0, warmup, False, clients[0])
            sessions.counter = 0
            t0 = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                futures = [
                    pool.submit(sessions.run, w, requests, True, clients[w])
                    for w in range(concurrency)
                ]
                for f in futures:
                    f.result()
            seconds = time.perf_counter() - t0
        finally:
            for c in clients:
                c.close()
    lat = sorted(x * 1000 for x in sessions.latencies)
    return ServerBenchResult(
        requests=len(lat),
        concurrency=concurrency,
        draft_tokens=draft_tokens,
        errors=sessions.errors,
        seconds=seconds,
        requests_per_second=len(lat) / seconds if seconds > 0 else 0.0,
        p50_ms=_percentile(lat, 0.50),
        p99_ms=_percentile(lat, 0.99),
        mean_ms=statistics.fmean(lat) if lat else 0.0,
        acceptance_rate=sessions.accepted / sessions.drafted if sessions.drafted else 0.0,
        model=core.llm.name,
    )


class _Sessions:
    """Client sessions sending rounds as the engine does, sharing one bounded request count."""

    def __init__(self, vocab: int, draft_tokens: int, max_prefix: int, seed: int) -> None:
        self.vocab = vocab
        self.draft_tokens = draft_tokens
        self.max_prefix = max_prefix
        self.seed = seed
        self.prompt = [ChatMessage(role="user", content="what is my plan for friday ?")]
        self.latencies: list[float] = []
        self.accepted = self.drafted = self.errors = self.counter = 0
        self._lock = threading.Lock()

    def _take(self, limit: int) -> bool:
        with self._lock:
            if self.counter >= limit:
                return False
            self.counter += 1
            return True

    def run(self, worker: int, limit: int, timed: bool, verifier: HttpVerifier) -> None:
        """Send rounds until ``limit`` calls are taken in all; the prefix grows by the accepted
        tokens plus one and starts over after ``max_prefix`` tokens."""
        rng = random.Random(self.seed * 1000 + worker)
        prefix: list[int] = []
        while self._take(limit):
            draft = [rng.randrange(8, self.vocab) for _ in range(self.draft_tokens)]
            req = VerifyRequest(
                request_id=uuid.uuid4().hex,
                prompt=self.prompt,
                prefix=TokenIds(ids=prefix),
                draft=TokenIds(ids=draft),
                ctxfree_logprobs=[-rng.uniform(0.5, 6.0) for _ in draft],
                params=VerifyParams(seed=rng.randrange(2**31)),
            )
            t0 = time.perf_counter()
            try:
                resp = verifier.verify(req)
            except CloudError:
                with self._lock:
                    self.errors += 1
                continue
            dt = time.perf_counter() - t0
            n = resp.n_accepted
            prefix = [*prefix, *draft[:n], (resp.top_k.ids or [8])[0]]
            if len(prefix) > self.max_prefix:
                prefix = []
            if timed:
                with self._lock:
                    self.latencies.append(dt)
                    self.accepted += n
                    self.drafted += len(draft)


def render_markdown(result: ServerBenchResult) -> str:
    """A Markdown section reporting ``result``."""
    r = result
    return "\n".join(
        [
            "## Cloud server: verify endpoint",
            "",
            f"`POST /v1/verify` over loopback HTTP (keep-alive, bearer token), model `{r.model}`, "
            f"{r.concurrency} concurrent client sessions, K = {r.draft_tokens} draft tokens per "
            "request (random drafts, so acceptance is near 0); server and clients share one process.",
            "",
            "| requests | errors | requests/s | p50 latency (ms) | p99 latency (ms) "
            "| mean latency (ms) | acceptance |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r.requests} | {r.errors} | {r.requests_per_second:.1f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.mean_ms:.2f} | {r.acceptance_rate:.2f} |",
            "",
        ]
    )
