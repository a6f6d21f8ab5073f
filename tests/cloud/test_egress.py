"""The egress door: the audit log holds exactly the bytes on the wire, for every adapter; the
policy is set one public way; conflicting settings are refused, never ignored."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from specsteer import (
    Assistant,
    ConfigurationError,
    Decoder,
    GenerationConfig,
    PrivateEgress,
    build_prompt,
)
from specsteer.cloud_adapter import (
    BackgroundServer,
    CloudVerifier,
    ForwardingVerifier,
    HttpVerifier,
    InProcessVerifier,
    OpenAICompatibleVerifier,
    VerifierCore,
    VerifyRequest,
    VerifyResponse,
    create_app,
)
from specsteer.privacy import DEFAULT_ACTIONS, AuditLog, EgressGuard, EgressPolicy

from . import faults

pytestmark = pytest.mark.timeout(120)

TOKEN = "egress-test-token"
QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening"
CONFIG = GenerationConfig(max_new_tokens=10, greedy=True, seed=3)


@pytest.fixture(scope="module")
def server_url(llm) -> Iterator[str]:
    app = create_app(VerifierCore(llm), token=TOKEN)
    with BackgroundServer(app) as server:
        yield server.url


class RecordingInProcess(InProcessVerifier):
    """The in-process adapter, keeping the bytes handed to its model."""

    def __init__(self, llm) -> None:  # type: ignore[no-untyped-def]
        super().__init__(llm)
        self.sent: list[bytes] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        self.sent.append(wire)
        return super().transmit(request, wire)


def _adapter(kind: str, url: str, slm, llm) -> tuple[CloudVerifier, list[bytes]]:  # type: ignore[no-untyped-def]
    if kind == "in-process":
        verifier = RecordingInProcess(llm)
        return verifier, verifier.sent
    transport = faults.FaultTransport(lambda _req, forward: forward())
    if kind == "http":
        return HttpVerifier(url, token=TOKEN, transport=transport), transport.sent
    openai = OpenAICompatibleVerifier(
        url, llm.name, tokenizer=slm, token=TOKEN, transport=transport
    )
    return openai, transport.sent


@pytest.mark.parametrize("kind", ["in-process", "http", "openai"])
def test_audit_records_hold_the_bytes_on_the_wire(slm, llm, server_url, kind, tmp_path) -> None:
    verifier, sent = _adapter(kind, server_url, slm, llm)
    log = AuditLog(tmp_path / "audit.jsonl")
    egress = PrivateEgress(audit_log=log)
    with verifier:
        result = Decoder(slm, verifier, egress=egress).generate(
            build_prompt(QUERY, CONTEXT), CONFIG
        )
    assert result.stats.fallback is None and result.stats.cloud_calls > 0
    audited = [log.read_payload(r) for r in log.records()]
    assert audited == sent and len(sent) == result.stats.cloud_calls
    if kind == "openai":  # the wire carries a completions body, not a VerifyRequest
        assert all(b'"prompt_logprobs"' in body or b'"logprobs"' in body for body in sent)
        assert not any(b'"protocol_version"' in body for body in sent)


def test_a_forwarding_wrapper_keeps_the_inner_adapters_bytes(slm, llm, server_url, tmp_path):
    """A wrapper that observes calls (as a UI tap does) changes nothing on the wire."""
    inner, sent = _adapter("openai", server_url, slm, llm)
    seen: list[int] = []

    class Tap(ForwardingVerifier):
        def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
            response = super().transmit(request, wire)
            seen.append(response.n_accepted)
            return response

    log = AuditLog(tmp_path / "audit.jsonl")
    with Tap(inner) as tap:
        result = Decoder(slm, tap, egress=PrivateEgress(audit_log=log)).generate(
            build_prompt(QUERY, CONTEXT), CONFIG
        )
    assert [log.read_payload(r) for r in log.records()] == sent
    assert len(seen) == result.stats.cloud_calls > 0


def test_a_payload_the_guard_refuses_never_reaches_the_transport(slm, llm, server_url) -> None:
    verifier, sent = _adapter("openai", server_url, slm, llm)
    policy = EgressPolicy(actions={**DEFAULT_ACTIONS, "EMAIL_ADDRESS": "block"})
    egress = PrivateEgress(policy=policy, audit_log=AuditLog())
    prompt = build_prompt("write to bob@example.com about friday", "")
    with verifier:
        result = Decoder(slm, verifier, egress=egress).generate(prompt, CONFIG)
    # The query's address was kept local (placeholder); what did leave carries none of it.
    assert sent and not any(b"bob@example.com" in body for body in sent)
    assert result.privacy is not None and result.privacy.spans_kept_local >= 1


def test_the_policy_is_set_through_public_names(slm, llm) -> None:
    door = PrivateEgress(policy=EgressPolicy(actions={**DEFAULT_ACTIONS, "EMAIL_ADDRESS": "allow"}))
    assistant = Assistant.in_process(slm, llm, privacy=door)
    result = assistant.generate("mail bob@example.com about friday", context="", max_new_tokens=4)
    assert assistant.egress is door
    assert result.privacy is not None and result.privacy.payloads > 0
    records = [door.guard.audit_log.read_payload(r) for r in door.guard.audit_log.records()]
    assert any(b"bob@example.com" in (body or b"") for body in records)  # allowed: it left


def test_conflicting_settings_are_refused_not_ignored(slm, llm) -> None:
    guard = EgressGuard(allowed_types=(VerifyRequest,))
    with pytest.raises(ConfigurationError, match="not both"):
        PrivateEgress(guard, policy=EgressPolicy())

    def send(request: VerifyRequest, cloud: CloudVerifier) -> VerifyResponse:
        return cloud.verify(request)

    with pytest.raises(ConfigurationError, match=re.escape("send=... or egress=...")):
        Decoder(slm, InProcessVerifier(llm), send=send, egress=PrivateEgress())


def test_a_door_used_alone_says_how_to_read_token_ids() -> None:
    door = PrivateEgress()
    with pytest.raises(ConfigurationError, match=re.escape("decode_ids=device.decode")):
        door.guard.send(
            VerifyRequest(
                request_id="r" * 32,
                prompt=[{"role": "user", "content": "hi"}],
                prefix={"kind": "ids", "ids": [5]},
                draft={"kind": "ids", "ids": [6]},
                ctxfree_logprobs=[-1.0],
            ),
            "cloud",
            lambda data: b"{}",
        )


def test_the_mock_transport_sees_what_the_audit_log_holds(slm, tmp_path) -> None:
    """Without any server: the bytes httpx would put on the network are the audited bytes."""
    bodies: list[bytes] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(503, json={"error": {"message": "down"}})

    log = AuditLog(tmp_path / "audit.jsonl")
    verifier = HttpVerifier(
        "http://127.0.0.1:9/v1", transport=httpx.MockTransport(refuse), retries=0
    )
    result = Decoder(slm, verifier, egress=PrivateEgress(audit_log=log)).generate(
        build_prompt(QUERY, CONTEXT), CONFIG
    )
    assert result.stats.fallback is not None
    assert [log.read_payload(r) for r in log.records()] == bodies and len(bodies) == 1


class PrettyInProcess(RecordingInProcess):
    """An adapter whose wire bytes are not the protocol's compact JSON (indented)."""

    def encode(self, request: VerifyRequest) -> bytes:
        return request.model_dump_json(indent=2).encode()


@pytest.mark.parametrize("screened", [True, False])
def test_bytes_sent_counts_the_adapters_own_wire_bytes(slm, llm, screened: bool) -> None:
    cloud = PrettyInProcess(llm)
    egress = PrivateEgress() if screened else None
    decoder = Decoder(slm, cloud, egress=egress)
    res = decoder.generate(build_prompt(QUERY, CONTEXT), CONFIG)
    assert cloud.sent and all(b"\n  " in wire for wire in cloud.sent)
    assert res.stats.cloud_calls == len(cloud.sent)
    assert res.stats.bytes_sent == sum(map(len, cloud.sent))
