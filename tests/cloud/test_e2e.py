"""End to end over real HTTP: a server subprocess, both adapters, outputs equal in-process."""

from __future__ import annotations

import httpx
import pytest

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer.cloud_adapter import HttpVerifier, InProcessVerifier, OpenAICompatibleVerifier

pytestmark = pytest.mark.timeout(120)

QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"


def run(device, verifier, **kw):
    cfg = GenerationConfig(**{"max_new_tokens": 24, **kw})
    return Decoder(device, verifier).generate(build_prompt(QUERY, CONTEXT), cfg)


CASES = [
    pytest.param({"greedy": True}, id="greedy"),
    pytest.param({"greedy": False, "seed": 11}, id="sampled"),
    pytest.param({"lam": 1e-5}, id="greedy-mixed-acceptance"),
    pytest.param({"greedy": False, "seed": 2, "lam": 1e-4}, id="sampled-mixed-acceptance"),
    pytest.param({"method": "token_fusion", "max_new_tokens": 10}, id="token-fusion"),
    pytest.param({"method": "speculative"}, id="speculative-greedy"),
    pytest.param({"method": "speculative", "greedy": False, "seed": 3}, id="speculative-sampled"),
]


def test_cases_cover_rejection_partial_and_full_acceptance(slm, llm) -> None:
    """The equality cases below exercise every recovery path: top-k at a rejection, bonus."""
    seen: set[str] = set()
    for case in CASES:
        for r in run(slm, InProcessVerifier(llm), **case.values[0]).stats.rounds:
            if r.drafted:
                seen.add(
                    "none" if r.accepted == 0 else "all" if r.accepted == r.drafted else "some"
                )
    assert seen == {"none", "some", "all"}


@pytest.mark.parametrize("kw", CASES)
def test_http_verifier_equals_in_process(slm, llm, live_server, kw) -> None:
    expected = run(slm, InProcessVerifier(llm), **kw)
    with HttpVerifier(live_server.url, token=live_server.token) as http:
        got = run(slm, http, **kw)
    assert got.stats.fallback is None
    assert got.token_ids == expected.token_ids
    assert [r.accepted for r in got.stats.rounds] == [r.accepted for r in expected.stats.rounds]
    assert got.stats.cloud_calls == expected.stats.cloud_calls > 0


#: Sampled standard speculative decoding corrects exactly from the reference server's draws of
#: its whole distribution; vLLM returns no draws, so that adapter's correction uses the top-k.
VLLM_CASES = [c for c in CASES if c.id != "speculative-sampled"]


@pytest.mark.parametrize("kw", VLLM_CASES)
def test_openai_compatible_verifier_equals_in_process(slm, llm, live_server, kw) -> None:
    expected = run(slm, InProcessVerifier(llm), **kw)
    verifier = OpenAICompatibleVerifier(
        live_server.url, live_server.model, tokenizer=slm, token=live_server.token
    )
    with verifier:
        got = run(slm, verifier, **kw)
    assert got.stats.fallback is None
    assert got.token_ids == expected.token_ids
    assert [r.accepted for r in got.stats.rounds] == [r.accepted for r in expected.stats.rounds]


def test_ctxfree_from_the_servers_slm_copy(slm, llm, live_server) -> None:
    """With ctxfree_source='cloud' only token ids go up; the server's SLM copy scores P_S0."""
    sent: list[bytes] = []

    def spy(request: httpx.Request) -> None:
        sent.append(request.content)

    client = httpx.Client(event_hooks={"request": [spy]})
    with HttpVerifier(live_server.url, token=live_server.token, client=client) as http:
        got = run(slm, http, ctxfree_source="cloud")
    client.close()
    expected = run(slm, InProcessVerifier(llm), ctxfree_source="device")
    assert got.stats.fallback is None
    assert got.token_ids == expected.token_ids
    assert sent and all(b'"ctxfree_logprobs":null' in body for body in sent)


def test_private_context_never_leaves_over_http(slm, live_server) -> None:
    sent: list[bytes] = []
    client = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.content)]})
    with HttpVerifier(live_server.url, token=live_server.token, client=client) as http:
        res = run(slm, http)
    client.close()
    assert res.stats.cloud_calls == len(sent) > 0
    for body in sent:
        assert b"sister" not in body and b"rome" not in body and b"pasta" not in body


def test_metrics_count_verified_tokens(slm, live_server) -> None:
    with HttpVerifier(live_server.url, token=live_server.token) as http:
        res = run(slm, http, max_new_tokens=8)
    text = httpx.get(
        f"{live_server.url}/metrics", headers={"authorization": f"Bearer {live_server.token}"}
    ).text

    def value(name: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(name + " "))
        return float(line.split()[1])

    assert value("specsteer_draft_tokens_verified_total") >= res.stats.drafted_tokens > 0
    assert 0.0 <= value("specsteer_acceptance_rate") <= 1.0
    assert 'specsteer_requests_total{endpoint="/v1/verify",status="200"}' in text
    assert "specsteer_request_seconds_bucket" in text
    assert httpx.get(f"{live_server.url}/metrics").status_code == 401
