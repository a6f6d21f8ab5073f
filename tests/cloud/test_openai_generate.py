"""``cloud_only`` through the OpenAI-compatible adapter: one plain /v1/completions call, run here
over real HTTP against the reference server's completions emulator, and the exact bytes it sends."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from specsteer import CloudError, Decoder, GenerationConfig, ProtocolError, build_prompt
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import (
    BackgroundServer,
    GenerateParams,
    GenerateRequest,
    InProcessVerifier,
    OpenAICompatibleVerifier,
    VerifierCore,
    create_app,
)
from specsteer.testing import tiny_backend

pytestmark = pytest.mark.timeout(180)

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")


@pytest.fixture(scope="module")
def emulator(llm: TransformersBackend) -> Iterator[str]:
    with BackgroundServer(create_app(VerifierCore(llm), token=None)) as server:
        yield server.url


@pytest.mark.parametrize(
    "update",
    [{}, {"greedy": False, "seed": 5, "temperature": 0.8, "top_p": 0.9}],
    ids=["greedy", "sampled"],
)
def test_cloud_only_over_the_emulator_equals_in_process(slm, llm, emulator, update) -> None:
    cfg = GenerationConfig(method="cloud_only", max_new_tokens=20, **update)
    local = Decoder(slm, InProcessVerifier(llm)).generate(PROMPT, cfg)
    with OpenAICompatibleVerifier(emulator, llm.name, tokenizer=llm) as adapter:
        remote = Decoder(slm, adapter).generate(PROMPT, cfg)
    assert remote.stats.fallback is None and remote.stats.cloud_calls == 1
    assert remote.token_ids == local.token_ids and remote.text == local.text


def test_cloud_only_for_a_device_of_another_family(llm, emulator) -> None:
    """The device reads the answer by its own tokens of the text (in process, the cloud model
    reads it by its own: the same text, cut at 20 tokens of the other tokenizer)."""
    device = tiny_backend(0, family="pieces")
    cfg = GenerationConfig(method="cloud_only", max_new_tokens=20)
    local = Decoder(device, InProcessVerifier(llm), wire="text").generate(PROMPT, cfg)
    with OpenAICompatibleVerifier(emulator, llm.name, tokenizer=llm) as adapter:
        remote = Decoder(device, adapter, wire="text").generate(PROMPT, cfg)
    assert remote.stats.fallback is None and remote.text
    assert local.text.startswith(remote.text)


def request(**params: object) -> GenerateRequest:
    return GenerateRequest(
        request_id="g",
        prompt=[{"role": "user", "content": "what is my plan for friday ?"}],
        max_new_tokens=7,
        params=GenerateParams(**params),  # type: ignore[arg-type]
    )


def test_the_generate_body(llm) -> None:
    sent: list[dict] = []

    def record(req: httpx.Request) -> httpx.Response:
        sent.append(json.loads(req.content))
        return httpx.Response(500)

    adapter = OpenAICompatibleVerifier(
        "http://127.0.0.1:9", "m", tokenizer=llm, transport=httpx.MockTransport(record), retries=0
    )
    with pytest.raises(CloudError, match="500"):
        adapter.generate(request(greedy=False, temperature=0.7, top_p=0.9, seed=3, ignore_eos=True))
    assert sent == [
        {
            "model": "m",
            "prompt": llm.encode_chat(
                [{"role": "user", "content": "what is my plan for friday ?"}]
            ),
            "max_tokens": 7,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "top_p": 0.9,
            "top_k": -1,
            "min_p": 0.0,
            "temperature": 0.7,
            "logprobs": 0,
            "echo": False,
            "return_tokens_as_token_ids": True,
            "seed": 3,
            "ignore_eos": True,
        }
    ]
    with pytest.raises(ProtocolError, match=r"repetition_penalty=1\.0"):
        adapter.encode_generate(request(repetition_penalty=1.2))
    assert len(sent) == 1  # refused before anything was sent
