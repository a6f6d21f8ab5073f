"""Bounded load over loopback: 32 concurrent sessions against the server subprocess."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer.cloud_adapter import HttpVerifier, InProcessVerifier, OpenAICompatibleVerifier

pytestmark = pytest.mark.timeout(180)

SESSIONS = 32
QUERIES = ["what is my plan for friday ?", "when is my dentist appointment ?"]
CONFIGS = [
    {"greedy": True, "lam": 1e-5},
    {"greedy": False, "seed": 2, "lam": 1e-4},
]


def _cfg(i: int) -> tuple[str, dict]:
    return QUERIES[i % 2], {"max_new_tokens": 8, **CONFIGS[(i // 2) % 2]}


def test_32_concurrent_sessions_complete_without_errors(slm, llm, live_server) -> None:
    references = {}
    for i in range(4):
        query, kw = _cfg(i)
        ref = Decoder(slm, InProcessVerifier(llm)).generate(
            build_prompt(query, "i love pasta"), GenerationConfig(**kw)
        )
        references[i] = ref.token_ids

    def session(i: int):
        query, kw = _cfg(i)
        if i % 4 == 3:  # a quarter of the sessions go through the vLLM-style endpoint
            verifier = OpenAICompatibleVerifier(
                live_server.url,
                live_server.model,
                tokenizer=slm,
                token=live_server.token,
                timeout=60,
            )
        else:
            verifier = HttpVerifier(live_server.url, token=live_server.token, timeout=60)
        with verifier:
            return i, Decoder(slm, verifier).generate(
                build_prompt(query, "i love pasta"), GenerationConfig(**kw)
            )

    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(session, range(SESSIONS)))
    assert len(results) == SESSIONS
    for i, res in results:
        assert res.stats.fallback is None, res.stats.fallback
        assert res.stats.cloud_calls > 0
        # No cross-talk between sessions in the server's shared KV cache pool.
        assert res.token_ids == references[i % 4]
