"""``cloud_only`` through the verifier seam: the cloud model answers one generate request, in
process or over HTTP, through the egress door like every other payload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from specsteer import (
    ConfigurationError,
    Decoder,
    GenerationConfig,
    PrivateEgress,
    build_prompt,
    fusion,
)
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import (
    BackgroundServer,
    CloudVerifier,
    GenerateRequest,
    GenerateResponse,
    HttpVerifier,
    InProcessVerifier,
    SimulatedNetwork,
    VerifierCore,
    VerifyRequest,
    VerifyResponse,
    create_app,
)
from specsteer.privacy import AuditLog
from specsteer.testing import tiny_backend

pytestmark = pytest.mark.timeout(180)

TOKEN = "generate-test-token"
PROMPT = build_prompt("what is my plan for friday ?", "my sister and i have dinner in rome")
CLOUD_ONLY = GenerationConfig(method="cloud_only", max_new_tokens=24, greedy=True, seed=5)


@pytest.fixture(scope="module")
def server_url(llm: TransformersBackend) -> Iterator[str]:
    app = create_app(VerifierCore(llm), token=TOKEN)
    with BackgroundServer(app) as server:
        yield server.url


def reference_decode(llm: TransformersBackend, cfg: GenerationConfig) -> list[int]:
    """The cloud model decoding the public prompt directly, no cache, as the engine samples."""
    ids = llm.encode_chat(PROMPT.public_dicts())
    gen = torch.Generator().manual_seed(cfg.seed or 0)
    out: list[int] = []
    while len(out) < cfg.max_new_tokens:
        logits, _ = llm.forward(ids + out, None)
        lp = fusion.processed_log_probs(logits[-1], out, cfg.processing)
        out.append(fusion.draft_token(lp, cfg.greedy, gen, cfg.top_p))
        if out[-1] in llm.eos_token_ids:
            break
    return out


@pytest.mark.parametrize(
    "update",
    [{}, {"greedy": False, "seed": 11, "top_p": 0.9, "repetition_penalty": 1.3}],
    ids=["greedy", "sampled"],
)
def test_in_process_cloud_only_is_the_cloud_models_own_decoding(slm, llm, update) -> None:
    cfg = CLOUD_ONLY.model_copy(update=update)
    result = Decoder(slm, InProcessVerifier(llm)).generate(PROMPT, cfg)
    assert list(result.token_ids) == reference_decode(llm, cfg)
    stats = result.stats
    assert stats.cloud_calls == 1 and stats.fallback is None
    assert stats.bytes_sent > 0 and stats.bytes_received > 0


def test_a_remote_reference_server_generates_the_same_answer(slm, llm, server_url) -> None:
    local = Decoder(slm, InProcessVerifier(llm)).generate(PROMPT, CLOUD_ONLY)
    with HttpVerifier(server_url, token=TOKEN, vocab_size=slm.vocab_size) as remote:
        result = Decoder(slm, remote).generate(PROMPT, CLOUD_ONLY)
    assert result.stats.fallback is None and result.stats.cloud_calls == 1
    assert result.token_ids == local.token_ids and result.text == local.text


def test_a_cloud_with_another_vocabulary_answers_in_text(llm, server_url) -> None:
    """The device reads the answer by its own tokens when the cloud's ids mean nothing to it;
    the length limit counts those, as in every method of a cross-vocabulary pair."""
    device = tiny_backend(0, family="pieces")
    local = Decoder(device, InProcessVerifier(llm)).generate(PROMPT, CLOUD_ONLY)
    with HttpVerifier(server_url, token=TOKEN) as remote:
        result = Decoder(device, remote, wire="text").generate(PROMPT, CLOUD_ONLY)
    assert result.stats.fallback is None and len(local.text.split()) >= 3
    assert local.text.startswith(result.text) and len(result.text) > len(local.text) // 3
    assert device.decode(list(result.token_ids)).strip() == result.text
    assert len(result.token_ids) == CLOUD_ONLY.max_new_tokens  # a word piece each


def test_the_generate_request_goes_out_through_the_egress(slm, llm, tmp_path) -> None:
    """Screened prompt, audited bytes equal to those sent, one simulated round trip."""
    network = SimulatedNetwork(InProcessVerifier(llm), rtt_ms=20, sleep=lambda _s: None)
    sent: list[bytes] = []

    class Recorder(InProcessVerifier):
        def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
            sent.append(wire)
            return super().transmit_generate(request, wire)

    network.inner = Recorder(llm)
    log = AuditLog(tmp_path / "audit.jsonl")
    egress = PrivateEgress(audit_log=log)
    egress.begin(["my sister and i have dinner in rome"], names=["Ines"])
    prompt = build_prompt("write to Ines about friday", "my sister and i have dinner in rome")
    result = Decoder(slm, network, egress=egress).generate(prompt, CLOUD_ONLY)
    records = list(log.records())
    assert [log.read_payload(r) for r in records] == sent and len(sent) == 1
    assert records[0]["payload_type"] == "GenerateRequest"
    assert b"Ines" not in sent[0] and b"rome" not in sent[0]  # placeholder; no private context
    assert network.calls == 1 and network.bytes_sent == len(sent[0])
    assert result.privacy is not None and result.privacy.payloads == 1


class VerifyOnly(CloudVerifier):
    def verify(self, request: VerifyRequest) -> VerifyResponse:
        raise AssertionError("not called")


def test_a_cloud_that_cannot_generate_is_refused_before_anything_is_sent(slm, llm) -> None:
    with pytest.raises(ConfigurationError, match="cannot generate"):
        VerifyOnly().generate(
            GenerateRequest(request_id="a" * 16, prompt=PROMPT.public, max_new_tokens=4)
        )
    with pytest.raises(ConfigurationError, match="cloud that can generate"):
        Decoder(slm, VerifyOnly()).generate(PROMPT, CLOUD_ONLY)
    # With the cloud model at hand, cloud_only still runs (in this process).
    result = Decoder(slm, VerifyOnly(), cloud_backend=llm).generate(PROMPT, CLOUD_ONLY)
    assert list(result.token_ids) == reference_decode(llm, CLOUD_ONLY)


def test_an_unreachable_cloud_ends_in_a_fallback_not_a_crash(slm) -> None:
    with HttpVerifier("http://127.0.0.1:9", retries=0, connect_timeout=0.5) as dead:
        result = Decoder(slm, dead).generate(PROMPT, CLOUD_ONLY)
    assert result.token_ids == () and result.stats.cloud_calls == 1
    assert result.stats.fallback is not None and result.stats.fallback.startswith("CloudError")


def test_the_server_refuses_generations_beyond_its_limits(server_url, llm) -> None:
    import httpx

    from specsteer.cloud_adapter import ServerLimits

    app = create_app(VerifierCore(llm), token=None, limits=ServerLimits(max_new_tokens=8))
    body = GenerateRequest(request_id="b" * 16, prompt=PROMPT.public, max_new_tokens=9)
    with BackgroundServer(app) as server:
        resp = httpx.post(f"{server.url}/v1/generate", content=body.model_dump_json())
    assert resp.status_code == 400 and "max_new_tokens" in resp.json()["error"]["message"]
    unauthenticated = httpx.post(f"{server_url}/v1/generate", content=body.model_dump_json())
    assert unauthenticated.status_code == 401
