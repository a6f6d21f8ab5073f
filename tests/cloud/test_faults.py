"""Fault injection: every misbehaviour ends in a finished generation or a typed error."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from specsteer import CloudError, Decoder, GenerationConfig, ProtocolError, build_prompt
from specsteer.cloud_adapter import (
    CircuitBreaker,
    CloudVerifier,
    HttpVerifier,
    InProcessVerifier,
    OpenAICompatibleVerifier,
    TokenIds,
    VerifyParams,
    VerifyRequest,
)

from . import faults

pytestmark = pytest.mark.timeout(60)

QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"
N = 12


def run(device, verifier, **kw):
    cfg = GenerationConfig(**{"max_new_tokens": N, **kw})
    return Decoder(device, verifier).generate(build_prompt(QUERY, CONTEXT), cfg)


@pytest.fixture(scope="module")
def device_only(slm):
    return run(slm, None, method="device_only")


def top_k(doc):
    return doc["top_k"]


def _set(doc, key, value):
    doc[key] = value


FAULTS = [
    ("500", faults.status(500), "failed (500)"),
    ("503", faults.status(503), "answered 503"),
    ("504", faults.status(504), "answered 504"),
    ("400", faults.status(400, "nope"), "rejected the request (400): nope"),
    ("401", faults.status(401), "refused the token"),
    ("read-timeout", faults.raises(httpx.ReadTimeout), "timed out"),
    ("connect-error", faults.raises(httpx.ConnectError), "could not reach"),
    ("truncated-json", faults.truncated(0.5), "malformed verify response"),
    ("malformed-json", faults.body(b'{"n_accepted": 1, '), "malformed verify response"),
    ("empty-body", faults.body(b""), "malformed verify response"),
    ("html", faults.body(b"<html>bad gateway</html>"), "malformed verify response"),
    ("json-array", faults.body(b"[1, 2, 3]"), "malformed verify response"),
    (
        "wrong-lengths",
        faults.rewrite(lambda d, _r: top_k(d)["logprobs"].append(-5.0)),
        "one logprob per candidate",
    ),
    (
        "empty-top-k",
        faults.rewrite(lambda d, _r: top_k(d).update(ids=[], logprobs=[])),
        "at least one",
    ),
    (
        "nan-logprob",
        faults.rewrite(lambda d, _r: top_k(d)["logprobs"].__setitem__(0, float("nan"))),
        "finite log-probabilities",
    ),
    (
        "inf-logprob",
        faults.rewrite(lambda d, _r: top_k(d)["logprobs"].__setitem__(0, float("-inf"))),
        "finite log-probabilities",
    ),
    (
        "positive-logprob",
        faults.rewrite(lambda d, _r: top_k(d)["logprobs"].__setitem__(0, 0.7)),
        "finite log-probabilities",
    ),
    (
        "mass-above-one",
        faults.rewrite(lambda d, _r: top_k(d).update(logprobs=[0.0] * len(top_k(d)["ids"]))),
        "sum to",
    ),
    (
        "oov-id",
        faults.rewrite(lambda d, _r: top_k(d)["ids"].__setitem__(0, 10**6)),
        "outside the vocabulary",
    ),
    (
        "negative-id",
        faults.rewrite(lambda d, _r: top_k(d)["ids"].__setitem__(0, -1)),
        "malformed verify response",
    ),
    (
        "repeated-ids",
        faults.rewrite(lambda d, _r: top_k(d)["ids"].__setitem__(1, top_k(d)["ids"][0])),
        "repeat",
    ),
    (
        "top-k-too-long",
        faults.rewrite(
            lambda d, _r: top_k(d).update(
                ids=top_k(d)["ids"] + [250], logprobs=top_k(d)["logprobs"] + [-30.0]
            )
        ),
        "more than the",
    ),
    (
        "n-accepted-beyond-draft",
        faults.rewrite(lambda d, r: _set(d, "n_accepted", len(r["draft"]["ids"]) + 1)),
        "exceeds the draft",
    ),
    ("n-accepted-negative", faults.rewrite(lambda d, _r: _set(d, "n_accepted", -1)), "malformed"),
    (
        "wrong-request-id",
        faults.rewrite(lambda d, _r: _set(d, "request_id", "other")),
        "answers request",
    ),
    (
        "strings-for-ids",
        faults.rewrite(
            lambda d, _r: top_k(d).update(ids=None, strings=["a"] * len(top_k(d)["logprobs"]))
        ),
        "top-k strings",
    ),
    (
        "extra-field",
        faults.rewrite(lambda d, _r: _set(d, "private", "x")),
        "malformed verify response",
    ),
    ("wrong-version", faults.rewrite(lambda d, _r: _set(d, "protocol_version", 2)), "malformed"),
]


@pytest.mark.parametrize(("fault", "message"), [pytest.param(f, m, id=i) for i, f, m in FAULTS])
def test_fault_falls_back_to_device_only(slm, live_server, device_only, fault, message) -> None:
    transport = faults.FaultTransport(fault)
    verifier = HttpVerifier(
        live_server.url, token=live_server.token, transport=transport, retries=1, backoff=0.001
    )
    with verifier:
        res = run(slm, verifier)
    assert res.stats.fallback is not None and message in res.stats.fallback
    assert res.stats.new_tokens == N or res.finish_reason == "eos"
    # The first exchange failed, so the whole generation ran on the device.
    assert res.token_ids == device_only.token_ids
    assert res.stats.cloud_calls == 1


def test_retryable_failures_are_retried_then_succeed(slm, llm, live_server) -> None:
    calls = {"n": 0}

    def flaky(req, forward):
        calls["n"] += 1
        if calls["n"] % 3 != 0:  # two failures before every success
            return (
                faults.status(503)(req, forward)
                if calls["n"] % 2
                else faults.raises(httpx.ConnectError)(req, forward)
            )
        return forward()

    verifier = HttpVerifier(
        live_server.url,
        token=live_server.token,
        transport=faults.FaultTransport(flaky),
        retries=2,
        backoff=0.001,
    )
    delays: list[float] = []
    verifier.channel._sleep = delays.append
    with verifier:
        res = run(slm, verifier)
    expected = run(slm, InProcessVerifier(llm))
    assert res.stats.fallback is None
    assert res.token_ids == expected.token_ids
    assert verifier.channel.attempts == 3 * res.stats.cloud_calls
    # Jittered exponential backoff: attempt i waits backoff * 2**i * U(0.5, 1).
    assert all(0.0005 <= d <= 0.001 for d in delays[0::2])
    assert all(0.001 <= d <= 0.002 for d in delays[1::2])


def test_slow_response_within_the_deadline_succeeds(slm, llm, live_server) -> None:
    verifier = HttpVerifier(
        live_server.url,
        token=live_server.token,
        timeout=60,
        transport=faults.FaultTransport(faults.delayed(0.05)),
    )
    with verifier:
        res = run(slm, verifier, max_new_tokens=6)
    assert res.stats.fallback is None
    assert res.token_ids == run(slm, InProcessVerifier(llm), max_new_tokens=6).token_ids


def test_refused_connection(slm, device_only) -> None:
    verifier = HttpVerifier(f"http://127.0.0.1:{faults.free_port()}", retries=2, backoff=0.001)
    t0 = time.monotonic()
    res = run(slm, verifier)
    assert time.monotonic() - t0 < 10
    assert res.stats.fallback is not None and "ConnectError" in res.stats.fallback
    assert res.token_ids == device_only.token_ids
    assert verifier.channel.attempts == 3


#: A server that holds a call: never answers, trickles its headers, or trickles its body.
HOLDING = [faults.silent, faults.trickle_headers, faults.drip]


@pytest.mark.parametrize("handler", HOLDING, ids=lambda h: h.__name__)
def test_server_that_holds_the_call_hits_the_attempt_deadline(slm, device_only, handler) -> None:
    """Each trickled byte would reset a read timeout; the attempt's deadline still ends it."""
    with faults.tcp_server(handler) as url:
        verifier = HttpVerifier(url, timeout=0.4, retries=1, backoff=0.001)
        t0 = time.monotonic()
        res = run(slm, verifier)
        elapsed = time.monotonic() - t0
    assert res.stats.fallback is not None
    assert "no complete answer within 0.4 s (after 2 attempts)" in res.stats.fallback
    assert res.token_ids == device_only.token_ids
    # Two attempts of 0.4 s, then the device: far below the server's 30 s of trickling.
    assert elapsed < 10


def _adapters(url: str, slm) -> dict[str, CloudVerifier]:
    kw = {"timeout": 1.0, "retries": 0}
    return {
        "http": HttpVerifier(url, **kw),
        "openai": OpenAICompatibleVerifier(url, "m", tokenizer=slm, **kw),
    }


@pytest.mark.parametrize("adapter", ["http", "openai"])
@pytest.mark.parametrize("handler", HOLDING, ids=lambda h: h.__name__)
def test_every_adapter_ends_an_attempt_at_its_deadline(slm, adapter, handler) -> None:
    with faults.tcp_server(handler) as url:
        verifier = _adapters(url, slm)[adapter]
        t0 = time.monotonic()
        with (
            verifier,
            pytest.raises(CloudError, match=re.escape("no complete answer within 1.0 s")),
        ):
            verifier.verify(_request([10], [-1.0]))
        elapsed = time.monotonic() - t0
    # Bounded by the deadline plus generous slack for a loaded machine, not by the server.
    assert 0.9 <= elapsed < 6


def test_server_that_hangs_up(slm, device_only) -> None:
    with faults.tcp_server(faults.hang_up) as url:
        res = run(slm, HttpVerifier(url, retries=1, backoff=0.001))
    assert res.stats.fallback is not None and "could not reach" in res.stats.fallback
    assert res.token_ids == device_only.token_ids


def test_circuit_breaker_fails_fast_then_recovers(slm, live_server) -> None:
    broken = {"on": True}
    now = [0.0]  # the breaker's clock: the cool-down passes when the test says so

    def fault(req, forward):
        return faults.status(503)(req, forward) if broken["on"] else forward()

    verifier = HttpVerifier(
        live_server.url,
        token=live_server.token,
        transport=faults.FaultTransport(fault),
        retries=0,
        breaker_threshold=2,
        breaker_cooldown=30,
        breaker_clock=lambda: now[0],
    )
    for _ in range(2):
        assert "answered 503" in (run(slm, verifier).stats.fallback or "")
    assert verifier.breaker.state == "open"
    attempts = verifier.channel.attempts
    now[0] = 29.9  # however long the run took, the circuit is still open
    res = run(slm, verifier)  # fails at once: the server is not even called
    assert res.stats.fallback is not None and "circuit open" in res.stats.fallback
    assert verifier.channel.attempts == attempts
    broken["on"] = False
    now[0] = 30.0
    assert verifier.breaker.state == "half-open"
    res = run(slm, verifier)
    assert res.stats.fallback is None
    assert verifier.breaker.state == "closed"


def test_circuit_breaker_states_with_a_fake_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CloudError, match="circuit open"):
        breaker.before_call()
    now[0] = 10.0
    breaker.before_call()  # the one trial call
    with pytest.raises(CloudError):
        breaker.before_call()  # others still wait while the trial runs
    breaker.record_failure()  # the trial failed: open again for a full cool-down
    assert breaker.state == "open"
    now[0] = 20.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"


def _request(draft: list[int], lp0: list[float]) -> VerifyRequest:
    return VerifyRequest(
        request_id="wrong-draft",
        prompt=[{"role": "user", "content": QUERY}],
        prefix=TokenIds(ids=[]),
        draft=TokenIds(ids=draft),
        ctxfree_logprobs=lp0,
        params=VerifyParams(lam=0.5, greedy=True),
    )


def test_honest_server_rejects_a_deliberately_wrong_draft(llm, live_server) -> None:
    import torch

    prompt_ids = llm.encode_chat([{"role": "user", "content": QUERY}])
    row = torch.log_softmax(llm.forward(prompt_ids, None)[0][-1], dim=-1)
    worst = int(torch.argmin(row[:256]).item())  # the least likely token for the cloud model
    best = int(torch.argmax(row).item())
    with HttpVerifier(live_server.url, token=live_server.token, retries=0) as http:
        wrong = http.verify(_request([worst, worst, worst], [-0.01, -0.01, -0.01]))
        right = http.verify(_request([best], [float(row[best])]))
    assert wrong.n_accepted == 0
    assert wrong.top_k.ids is not None and wrong.top_k.ids[0] == best
    assert right.n_accepted == 1


def _accept_all(doc, request):
    """The lie that passes every draft: a cloud verdict of the whole draft, or scores that
    give every draft token all the probability."""
    if request["params"]["verdict"] == "device":
        doc["scores"]["logprobs"] = [0.0] * len(request["draft"]["ids"])
    else:
        doc["n_accepted"] = len(request["draft"]["ids"])


@pytest.mark.parametrize("device_verdict", [False, True])
def test_lying_server_degrades_quality_not_privacy(slm, llm, live_server, device_verdict) -> None:
    """A server accepting every draft gets exactly the bytes an honest one gets: no context."""
    lying = faults.FaultTransport(faults.rewrite(_accept_all))
    honest = faults.FaultTransport(lambda _req, forward: forward())
    outputs = {}
    for name, transport in (("lying", lying), ("honest", honest)):
        with HttpVerifier(live_server.url, token=live_server.token, transport=transport) as v:
            outputs[name] = run(
                slm, v, max_new_tokens=16, device_verdict=device_verdict, pipeline=True
            )
    lie, good = outputs["lying"], outputs["honest"]
    assert lie.stats.fallback is None  # a lie is well-formed: nothing can detect it locally
    assert lie.stats.acceptance_rate == 1.0
    assert good.stats.acceptance_rate < 0.5
    assert good.token_ids == run(slm, InProcessVerifier(llm), max_new_tokens=16).token_ids
    assert lie.token_ids != good.token_ids  # quality: the cloud's check was skipped
    for body in lying.sent + honest.sent:
        request = VerifyRequest.model_validate_json(body)
        assert request.params.verdict == ("device" if device_verdict else "cloud")
        assert (request.ctxfree_logprobs is None) == device_verdict
        text = body.decode()
        for word in ("sister", "rome", "pasta", "wine", "evening"):
            assert word not in text


def test_bad_configuration_is_a_caller_error() -> None:
    from specsteer import ConfigurationError

    for url in ("not a url", "ftp://x", "http://"):
        with pytest.raises(ConfigurationError):
            HttpVerifier(url)
    with pytest.raises(ConfigurationError):
        HttpVerifier("http://127.0.0.1:1", timeout=0)
    with pytest.raises(ConfigurationError):
        HttpVerifier("http://127.0.0.1:1", retries=-1)


def test_direct_verify_raises_typed_errors(live_server) -> None:
    req = _request([10], [-1.0])
    refused = HttpVerifier(f"http://127.0.0.1:{faults.free_port()}", retries=0)
    with refused as http, pytest.raises(CloudError):
        http.verify(req)
    bad = faults.FaultTransport(faults.body(b"{"))
    malformed = HttpVerifier(live_server.url, token=live_server.token, transport=bad)
    with malformed as http, pytest.raises(ProtocolError):
        http.verify(req)
    wrong_token = HttpVerifier(live_server.url, token="wrong", retries=0)
    with wrong_token as http, pytest.raises(CloudError, match="token"):
        http.verify(req)


def test_a_reference_server_on_loopback_computes_on_this_machine() -> None:
    """Drafting ahead would take its cores (GenerationConfig.pipeline's default)."""
    assert HttpVerifier("http://127.0.0.1:1").computes_here
    assert not HttpVerifier("https://cloud.example.com").computes_here
    assert InProcessVerifier.computes_here
