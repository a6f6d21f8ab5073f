"""The web page's tap observes rounds without changing what leaves: with the egress on and a
vLLM-style adapter inside, the audit log holds the adapter's own bytes and the tap sees every
exchange."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from specsteer import Decoder, GenerationConfig, PrivateEgress, build_prompt
from specsteer.apps.web._tokens import RoundTap
from specsteer.cloud_adapter import (
    BackgroundServer,
    OpenAICompatibleVerifier,
    VerifierCore,
    create_app,
)
from specsteer.privacy import AuditLog

from . import faults

pytestmark = pytest.mark.timeout(120)

TOKEN = "tap-test-token"


@pytest.fixture(scope="module")
def server_url(llm) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with BackgroundServer(create_app(VerifierCore(llm), token=TOKEN)) as server:
        yield server.url


def test_the_tap_keeps_the_inner_adapters_bytes(slm, llm, server_url, tmp_path) -> None:
    transport = faults.FaultTransport(lambda _req, forward: forward())
    inner = OpenAICompatibleVerifier(
        server_url, llm.name, tokenizer=slm, token=TOKEN, transport=transport
    )
    log = AuditLog(tmp_path / "audit.jsonl")
    with RoundTap(inner) as tap:
        result = Decoder(slm, tap, egress=PrivateEgress(audit_log=log)).generate(
            build_prompt("what is my plan for friday ?", "dinner in rome on friday"),
            GenerationConfig(max_new_tokens=10, greedy=True, seed=3),
        )
    assert result.stats.fallback is None
    assert [log.read_payload(r) for r in log.records()] == transport.sent
    assert len(tap.exchanges) == result.stats.cloud_calls == len(transport.sent) > 0
    assert all(b'"prompt_logprobs"' in b or b'"logprobs"' in b for b in transport.sent)
