"""Cross-vocabulary (text) requests over vLLM's completions API: the adapter, against the
completions emulator, judges every draft as the reference core does on the same request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import (
    BackgroundServer,
    CloudVerifier,
    InProcessVerifier,
    OpenAICompatibleVerifier,
    VerifierCore,
    VerifyRequest,
    VerifyResponse,
    create_app,
)
from specsteer.testing import tiny_backend

pytestmark = pytest.mark.timeout(180)

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")


@pytest.fixture(scope="module")
def device() -> TransformersBackend:
    return tiny_backend(0, family="pieces")  # word pieces: another tokenizer than the cloud's


@pytest.fixture(scope="module")
def cloud() -> TransformersBackend:
    return tiny_backend(1)


@pytest.fixture(scope="module")
def emulator(cloud: TransformersBackend) -> Iterator[str]:
    with BackgroundServer(create_app(VerifierCore(cloud), token=None)) as server:
        yield server.url


def text_requests(device, cloud, cfg: GenerationConfig) -> list[VerifyRequest]:  # type: ignore[no-untyped-def]
    sent: list[VerifyRequest] = []

    def send(req: VerifyRequest, verifier: CloudVerifier) -> VerifyResponse:
        sent.append(req)
        return verifier.verify(req)

    Decoder(device, InProcessVerifier(cloud), send=send, wire="text").generate(PROMPT, cfg)
    assert sent and all(r.draft.kind == "text" for r in sent)
    return sent


@pytest.mark.parametrize(
    "update",
    [
        {"lam": 1e-3},
        {"lam": 1e-3, "greedy": False, "seed": 4},
        {"method": "speculative"},
        {"method": "speculative", "greedy": False, "seed": 2},
    ],
    ids=["greedy", "sampled", "speculative-greedy", "speculative-sampled"],
)
def test_text_mode_judges_as_the_reference_core(device, cloud, emulator, update) -> None:
    cfg = GenerationConfig(max_new_tokens=24, top_k=8, greedy=True, seed=1).model_copy(
        update=update
    )
    core = VerifierCore(cloud)
    accepted = 0
    with OpenAICompatibleVerifier(emulator, cloud.name, tokenizer=cloud) as adapter:
        for request in text_requests(device, cloud, cfg):
            want, got = core.verify(request), adapter.verify(request)
            assert got.n_accepted == want.n_accepted
            assert got.top_k.strings == want.top_k.strings
            assert got.top_k.logprobs == pytest.approx(want.top_k.logprobs, abs=1e-4)
            accepted += got.n_accepted
    assert accepted > 0 or update.get("method") == "speculative"


def test_a_decoder_in_text_mode_runs_over_the_emulator(device, cloud, emulator) -> None:
    cfg = GenerationConfig(max_new_tokens=24, top_k=8, greedy=True, seed=1, lam=1e-3)
    local = Decoder(device, InProcessVerifier(cloud), wire="text").generate(PROMPT, cfg)
    with OpenAICompatibleVerifier(emulator, cloud.name, tokenizer=cloud) as adapter:
        remote = Decoder(device, adapter, wire="text").generate(PROMPT, cfg)
    assert remote.stats.fallback is None and remote.stats.cloud_calls > 0
    assert remote.token_ids == local.token_ids


def test_the_body_carries_text_and_asks_for_ids(device, cloud) -> None:
    cfg = GenerationConfig(max_new_tokens=8, top_k=8, greedy=True, seed=1)
    request = text_requests(device, cloud, cfg)[0]
    adapter = OpenAICompatibleVerifier("http://127.0.0.1:9", cloud.name, tokenizer=cloud)
    body = adapter.completion_body(request)
    assert isinstance(body["prompt"], str) and body["prompt"].endswith(request.draft.text)
    assert body["add_special_tokens"] is False and body["echo"] is True
    assert body["return_tokens_as_token_ids"] is True and body["prompt_logprobs"] == 8
    pins = {"repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    pins |= {"top_p": 1.0, "top_k": -1, "min_p": 0.0}
    assert {k: body[k] for k in pins} == pins
