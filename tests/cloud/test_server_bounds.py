"""What one /v1/completions request may cost the reference server: a bounded batch whose tokens
count together, work that stops at its deadline (so the model is free for the next request), and
prompt log-probabilities computed a block of positions at a time."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import BackgroundServer, ServerLimits, VerifierCore, create_app
from specsteer.testing import tiny_backend

from .conftest import start_server, stop_server

pytestmark = pytest.mark.timeout(120)


def completion(prompt: Any, **kw: Any) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": 1, "temperature": 0.0, **kw}


# -- the batch -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(llm: TransformersBackend):
    limits = ServerLimits(max_batch=4, max_tokens=64, max_completion_tokens=16)
    with TestClient(create_app(VerifierCore(llm), token=None, limits=limits)) as c:
        yield c


def test_a_batch_above_the_cap_is_refused(client) -> None:
    resp = client.post("/v1/completions", json=completion(["i love"] * 5))
    assert resp.status_code == 400 and "at most 4" in resp.json()["error"]["message"]
    assert client.post("/v1/completions", json=completion(["i love"] * 4)).status_code == 200


def test_a_batchs_tokens_count_together(client) -> None:
    """Four prompts of 14 tokens + 2 each: 16 apiece is within 64, the 64 of all four is not."""
    text = " ".join(["the"] * 14)
    ok = client.post("/v1/completions", json=completion([text] * 3, max_tokens=2))
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 3
    resp = client.post("/v1/completions", json=completion([text] * 4, max_tokens=3))
    assert resp.status_code == 400
    assert "68 tokens together" in resp.json()["error"]["message"]


def test_the_emulator_refuses_sampling_settings_it_does_not_apply(client) -> None:
    resp = client.post("/v1/completions", json=completion("i love", repetition_penalty=1.05))
    assert resp.status_code == 400 and "repetition_penalty" in resp.json()["error"]["message"]
    neutral = completion("i love", repetition_penalty=1, top_k=-1, min_p=0, presence_penalty=0)
    assert client.post("/v1/completions", json=neutral).status_code == 200


def test_five_thousand_prompts_get_a_prompt_400_and_the_server_stays_free(tmp_path: Path) -> None:
    """A real server process: the batch that used to hold the model for 20 s is refused."""
    server = start_server(tmp_path, "--timeout", "2")
    try:
        headers = {"authorization": f"Bearer {server.token}"}
        with httpx.Client(headers=headers, timeout=30) as http:
            big = http.post(f"{server.url}/v1/completions", json=completion(["i love the"] * 5000))
            assert big.status_code == 400 and "at most" in big.json()["error"]["message"]
            one = http.post(f"{server.url}/v1/completions", json=completion("i love the"))
            assert one.status_code == 200
    finally:
        stop_server(server)


# -- the deadline --------------------------------------------------------------------------------


class Gated(TransformersBackend):
    """The tiny model, counting its forward passes; while ``armed``, a pass waits for ``gate``."""

    def __init__(self, inner: TransformersBackend) -> None:
        super().__init__(inner.model, inner.tokenizer, name=inner.name)
        self.gate = threading.Event()
        self.armed = threading.Event()
        self.passes = 0

    def forward_tail(self, ids: Sequence[int], cache: Any | None, rows: int) -> Any:
        self.passes += 1
        if self.armed.is_set():
            self.gate.wait(30)
        return super().forward_tail(ids, cache, rows)


def test_timed_out_work_stops_and_frees_the_model(llm: TransformersBackend) -> None:
    """The first request's worker is held inside a forward pass until after its 504; released,
    it stops at its next step instead of writing 4 x 16 tokens, and a 1-token request runs."""
    model = Gated(llm)
    limits = ServerLimits(request_timeout_s=0.5, max_completion_tokens=16, max_batch=4)
    app = create_app(VerifierCore(model), token=None, limits=limits)
    with BackgroundServer(app, limits=limits) as server, httpx.Client(timeout=30) as http:
        model.armed.set()
        slow = http.post(
            f"{server.url}/v1/completions", json=completion(["i love the"] * 4, max_tokens=16)
        )
        assert slow.status_code == 504
        held = model.passes  # the abandoned worker waits inside this pass
        assert held >= 1
        model.armed.clear()
        model.gate.set()  # it goes on, past its deadline
        one = http.post(f"{server.url}/v1/completions", json=completion("i love the"))
        assert one.status_code == 200
    # One pass more: the 1-token request's own. The abandoned work made none after its held
    # pass: it stopped at the next deadline check and freed the model.
    assert model.passes - held == 1


# -- prompt log-probabilities in blocks ----------------------------------------------------------


class Recording(TransformersBackend):
    """The tiny model, recording how many rows of logits each forward pass returns."""

    def __init__(self, inner: TransformersBackend) -> None:
        super().__init__(inner.model, inner.tokenizer, name=inner.name)
        self.rows: list[int] = []

    def forward_tail(self, ids: Sequence[int], cache: Any | None, rows: int) -> Any:
        self.rows.append(rows)
        return super().forward_tail(ids, cache, rows)


@pytest.mark.parametrize("echo", [False, True])
def test_prompt_logprobs_are_computed_a_block_at_a_time(echo: bool) -> None:
    body = completion(list(range(10, 110)), prompt_logprobs=5, logprobs=3, echo=echo)
    answers = {}
    for rows in (8, 10_000 // 2):
        model = Recording(tiny_backend(1))
        limits = ServerLimits(logprob_rows=min(rows, 8192), max_completion_tokens=4)
        with TestClient(create_app(VerifierCore(model), token=None, limits=limits)) as c:
            resp = c.post("/v1/completions", json=body)
        assert resp.status_code == 200
        answers[rows] = resp.json()["choices"][0]
        if rows == 8:
            assert max(model.rows) <= 8 + 1  # a block and the row before it, never 100
            assert len(model.rows) >= 100 // 8
    small, whole = answers[8], answers[5000]
    for a, b in zip(small["prompt_logprobs"][1:], whole["prompt_logprobs"][1:], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key]["rank"] == b[key]["rank"]
            assert a[key]["logprob"] == pytest.approx(b[key]["logprob"], abs=1e-4)
    assert small["text"] == whole["text"]
    lps = [small["logprobs"]["token_logprobs"], whole["logprobs"]["token_logprobs"]]
    assert len(lps[0]) == len(lps[1]) == (101 if echo else 1)
    assert torch.allclose(
        torch.tensor([v or 0.0 for v in lps[0]]),
        torch.tensor([v or 0.0 for v in lps[1]]),
        atol=1e-4,
    )
