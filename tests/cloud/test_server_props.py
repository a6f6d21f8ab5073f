"""Property-based: malformed requests to every endpoint get a 4xx with a message, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from specsteer.cloud_adapter import ServerLimits, VerifierCore, VerifyResponse, create_app

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LIMITS = ServerLimits(max_body_bytes=32_000, max_tokens=512, request_timeout_s=20)
SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("CLOUD_PROP_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID_VERIFY: dict[str, Any] = {
    "protocol_version": 1,
    "request_id": "r-1",
    "model": "default",
    "prompt": [{"role": "user", "content": "what is my plan for friday ?"}],
    "prefix": {"kind": "ids", "ids": [10, 11]},
    "draft": {"kind": "ids", "ids": [12, 13, 14]},
    "ctxfree_logprobs": [-1.0, -2.0, -0.5],
    "params": {"lam": 0.5, "top_k": 5, "greedy": False, "temperature": 1.0, "seed": 3},
}
VALID_COMPLETION: dict[str, Any] = {
    "model": "tiny-llm",
    "prompt": [5, 6, 7, 8],
    "max_tokens": 1,
    "echo": False,
    "logprobs": 3,
    "prompt_logprobs": 2,
    "temperature": 0.0,
    "return_tokens_as_token_ids": True,
}


@pytest.fixture(scope="module")
def client(llm, slm):
    app = create_app(VerifierCore(llm, slm), token=TOKEN, limits=LIMITS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


def _mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A copy of ``base`` with a few fields (top-level or nested) replaced, dropped or added."""
    doc = json.loads(json.dumps(base))
    for _ in range(data.draw(st.integers(1, 3))):
        target = doc
        if data.draw(st.booleans()):
            nested = [k for k, v in doc.items() if isinstance(v, dict)]
            if nested:
                target = doc[data.draw(st.sampled_from(nested))]
        keys = sorted(target)
        action = data.draw(st.sampled_from(["replace", "drop", "add", "numbers"]))
        if action == "replace" and keys:
            target[data.draw(st.sampled_from(keys))] = data.draw(json_values)
        elif action == "drop" and keys:
            target.pop(data.draw(st.sampled_from(keys)))
        elif action == "add":
            target[data.draw(st.text(max_size=10))] = data.draw(json_values)
        elif keys:
            key = data.draw(st.sampled_from(keys))
            target[key] = data.draw(
                st.integers(-5, 2**40)
                | st.floats(allow_nan=True)
                | st.lists(st.integers(-3, 400), max_size=40)
            )
    return doc


def assert_client_error_or_ok(resp, endpoint: str) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        err = resp.json()["error"]
        assert isinstance(err["type"], str) and err["type"]
        assert isinstance(err["message"], str) and len(err["message"]) > 5
    elif endpoint == "/v1/verify":
        VerifyResponse.model_validate_json(resp.content)
    elif endpoint == "/v1/completions":
        assert resp.json()["object"] == "text_completion"


ENDPOINTS = {"/v1/verify": VALID_VERIFY, "/v1/completions": VALID_COMPLETION}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_valid_requests_succeed(client, endpoint) -> None:
    resp = client.post(endpoint, json=ENDPOINTS[endpoint], headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert_client_error_or_ok(resp, endpoint)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@SETTINGS
@given(data=st.data())
def test_mutated_requests_never_5xx(client, endpoint, data) -> None:
    doc = _mutate(ENDPOINTS[endpoint], data)
    resp = client.post(endpoint, content=json.dumps(doc).encode(), headers=AUTH)
    event(f"status {resp.status_code}")
    assert_client_error_or_ok(resp, endpoint)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@SETTINGS
@given(value=json_values)
def test_arbitrary_json_is_a_400(client, endpoint, value) -> None:
    resp = client.post(endpoint, content=json.dumps(value).encode(), headers=AUTH)
    assert resp.status_code == 400
    assert_client_error_or_ok(resp, endpoint)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_400(client, endpoint, raw) -> None:
    resp = client.post(endpoint, content=raw, headers=AUTH)
    assert resp.status_code == 400
    assert_client_error_or_ok(resp, endpoint)


PATHS = st.sampled_from(["/v1/verify", "/v1/completions", "/healthz", "/metrics"]) | st.text(
    st.characters(codec="ascii", categories=["L", "N"]), max_size=12
).map(lambda s: "/" + s)


@SETTINGS
@given(
    path=PATHS,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    auth=st.sampled_from(["none", "wrong", "scheme", "valid"]),
    raw=st.binary(max_size=64),
)
def test_any_path_and_method_gets_a_json_answer(client, path, method, auth, raw) -> None:
    headers = {
        "none": {},
        "wrong": {"authorization": "Bearer not-the-token"},
        "scheme": {"authorization": f"Basic {TOKEN}"},
        "valid": AUTH,
    }[auth]
    resp = client.request(method, path, content=raw, headers=headers)
    assert resp.status_code < 500, resp.text
    if path != "/healthz" and auth != "valid":
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
    if resp.status_code >= 400:
        assert resp.json()["error"]["message"]


@pytest.mark.parametrize("endpoint", ["/v1/verify", "/v1/completions", "/metrics"])
@SETTINGS
@given(token=st.text(max_size=40).filter(lambda t: t != TOKEN))
def test_requests_without_the_token_get_401(client, endpoint, token) -> None:
    header = f"Bearer {token}".encode()
    method = "GET" if endpoint == "/metrics" else "POST"
    resp = client.request(
        method, endpoint, json=ENDPOINTS.get(endpoint), headers={"authorization": header}
    )
    assert resp.status_code == 401
    assert "bearer token" in resp.json()["error"]["message"]


def test_health_is_open_and_reveals_nothing(client) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_oversized_bodies_get_413(client) -> None:
    big = dict(VALID_VERIFY, prompt=[{"role": "user", "content": "a " * 20_000}])
    resp = client.post("/v1/verify", json=big, headers=AUTH)
    assert resp.status_code == 413 and "exceeds" in resp.json()["error"]["message"]

    def chunks():
        for _ in range(50):
            yield b" " * 1000

    resp = client.post("/v1/verify", content=chunks(), headers=AUTH)  # no Content-Length
    assert resp.status_code == 413


def test_token_limits_get_400(client) -> None:
    long = dict(VALID_VERIFY, prefix={"kind": "ids", "ids": [10] * 600})
    resp = client.post("/v1/verify", json=long, headers=AUTH)
    assert resp.status_code == 400 and "limit of 512" in resp.json()["error"]["message"]
    long = dict(VALID_COMPLETION, prompt=[5] * 600)
    resp = client.post("/v1/completions", json=long, headers=AUTH)
    assert resp.status_code == 400 and "exceeds 512" in resp.json()["error"]["message"]
    resp = client.post("/v1/completions", json=dict(VALID_COMPLETION, logprobs=50), headers=AUTH)
    assert resp.status_code == 400 and "greater than max allowed: 20" in resp.text


def test_unservable_verify_requests_get_400(client) -> None:
    no_ctx = dict(VALID_VERIFY, ctxfree_logprobs=None)
    assert client.post("/v1/verify", json=no_ctx, headers=AUTH).status_code == 200  # SLM copy
    oov = dict(VALID_VERIFY, draft={"kind": "ids", "ids": [10**6, 1, 2]})
    resp = client.post("/v1/verify", json=oov, headers=AUTH)
    assert resp.status_code == 400 and "vocabulary" in resp.json()["error"]["message"]


def test_a_temperature_near_zero_is_served_as_its_limit(client) -> None:
    """Dividing by 1e-300 overflows; the distribution is its limit, the argmax, not NaN."""
    cold = dict(VALID_VERIFY, params=dict(VALID_VERIFY["params"], temperature=1e-300))
    resp = client.post("/v1/verify", json=cold, headers=AUTH)
    assert resp.status_code == 200
    assert resp.json()["top_k"]["logprobs"] == [0.0]  # one candidate, with all the mass


def test_error_messages_never_echo_request_content(client) -> None:
    secret = "my-private-diary-entry"
    doc = dict(VALID_VERIFY, prompt=[{"role": "patient", "content": secret}])
    resp = client.post("/v1/verify", json=doc, headers=AUTH)
    assert resp.status_code == 400 and "prompt.0.role" in resp.text
    assert secret not in resp.text


def test_completions_echo_shape_matches_vllm(client, llm) -> None:
    """``echo`` with ``max_tokens=0`` scores the prompt: vLLM's shape, first position empty."""
    body = dict(VALID_COMPLETION, max_tokens=0, echo=True, logprobs=2, prompt_logprobs=2)
    choice = client.post("/v1/completions", json=body, headers=AUTH).json()["choices"][0]
    ids = VALID_COMPLETION["prompt"]
    lp = choice["logprobs"]
    assert lp["tokens"] == [f"token_id:{i}" for i in ids]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert choice["prompt_logprobs"][0] is None and len(choice["prompt_logprobs"]) == len(ids)
    import torch

    logits, _ = llm.forward(ids, None)
    expected = torch.log_softmax(logits.float(), dim=-1)
    for j in range(1, len(ids)):
        entry = choice["prompt_logprobs"][j]
        own = entry[str(ids[j])]
        assert own["logprob"] == pytest.approx(float(expected[j - 1, ids[j]]), abs=1e-4)
        assert own["rank"] == int((expected[j - 1] > expected[j - 1, ids[j]]).sum()) + 1
        assert lp["token_logprobs"][j] == pytest.approx(own["logprob"])
        top = sorted(entry.items(), key=lambda kv: -kv[1]["logprob"])
        assert int(top[0][0]) == int(expected[j - 1].argmax())
        assert len(lp["top_logprobs"][j]) <= 3  # the token itself + the top 2
    assert choice["text"] == llm.decode(ids) and choice["finish_reason"] == "length"


def test_slow_model_gets_504_and_the_client_falls_back(llm, slm) -> None:
    import threading
    import time

    from specsteer import Decoder, GenerationConfig, build_prompt
    from specsteer.cloud_adapter import BackgroundServer, HttpVerifier

    release = threading.Event()

    class Slow(VerifierCore):
        def verify(self, request):
            release.wait(5)
            return super().verify(request)

    limits = ServerLimits(request_timeout_s=0.2)
    app = create_app(Slow(llm), token=TOKEN, limits=limits)
    with TestClient(app, raise_server_exceptions=False) as c:
        t0 = time.monotonic()
        resp = c.post("/v1/verify", json=VALID_VERIFY, headers=AUTH)
        assert resp.status_code == 504 and "within 0.2 s" in resp.json()["error"]["message"]
        # The 504 came from the deadline, not from the model finishing (it waits 5 s).
        assert time.monotonic() - t0 < 4.5
    release.set()
    release.clear()
    with BackgroundServer(app, limits=limits) as server:
        verifier = HttpVerifier(server.url, token=TOKEN, retries=1, backoff=0.01, timeout=60)
        res = Decoder(slm, verifier).generate(
            build_prompt("what is my plan ?", "pasta"), GenerationConfig(max_new_tokens=5)
        )
        release.set()
    assert res.stats.fallback is not None and "answered 504" in res.stats.fallback
    assert res.stats.new_tokens == 5 or res.finish_reason == "eos"


def test_completions_follow_vllm_where_a_client_sees_it(client, llm) -> None:
    """Unknown fields ignored, -1 as the whole vocabulary, echo of a text prompt as sent,
    usage and error bodies in vLLM's shape."""
    extra = dict(VALID_COMPLETION, user="someone", stream_options=None)
    ok = client.post("/v1/completions", json=extra, headers=AUTH).json()
    assert ok["usage"] == {
        "prompt_tokens": 4,
        "total_tokens": 5,
        "completion_tokens": 1,
        "prompt_tokens_details": None,
    }
    refused = client.post("/v1/completions", json=dict(VALID_COMPLETION, logprobs=-1), headers=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "message": f"Requested logprobs of {llm.vocab_size}, which is greater than max "
            f"allowed: {LIMITS.max_logprobs}",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    text = "what is my plan for friday ?"
    echoed = client.post(
        "/v1/completions",
        json={"prompt": text, "max_tokens": 1, "echo": True, "add_special_tokens": False},
        headers=AUTH,
    ).json()
    assert echoed["choices"][0]["text"].startswith(text)
    wide = create_app(VerifierCore(llm), token=TOKEN, limits=ServerLimits(max_logprobs=1000))
    with TestClient(wide) as c:
        body = dict(VALID_COMPLETION, prompt_logprobs=-1)
        entries = c.post("/v1/completions", json=body, headers=AUTH).json()["choices"][0]
    assert len(entries["prompt_logprobs"][1]) == llm.vocab_size
