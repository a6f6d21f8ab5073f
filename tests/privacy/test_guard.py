"""The egress guard: only protocol types leave, planted canaries are stopped, audit precedes send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from specsteer import PrivacyViolation
from specsteer.privacy import (
    DEFAULT_ACTIONS,
    AuditLog,
    DisallowedPayloadError,
    EgressGuard,
    EgressPolicy,
    PrivacyReport,
)

MEMORY = "Grandma's secret recipe uses three cloves of black garlic and a spoon of yuzu honey."
CANARY = "three cloves of black garlic and a spoon"


class Draft(BaseModel):
    """A stand-in for the wire protocol's request type."""

    model_config = ConfigDict(extra="forbid")
    query: str
    prefix: str = ""
    draft: str = ""
    ids: list[int] = []


class Sneaky(Draft):
    """A subclass could carry extra fields; the guard must refuse it."""

    context: str = ""


class Recorder:
    """A transport double: keeps every byte string it is given."""

    def __init__(self, log: AuditLog | None = None) -> None:
        self.sent: list[bytes] = []
        self.log = log
        self.records_seen: list[int] = []

    def __call__(self, data: bytes) -> bytes:
        if self.log is not None:
            # The record for these exact bytes is already on disk when transmit runs.
            on_disk = [json.loads(line) for line in self.log.path.read_text().splitlines()]
            assert on_disk[-1]["payload"].encode() == data
            self.records_seen.append(on_disk[-1]["seq"])
        self.sent.append(data)
        return b'{"n_accepted": 2}'


def _guard(**kw: object) -> tuple[EgressGuard, AuditLog]:
    log = AuditLog()
    guard = EgressGuard(audit_log=log, allowed_types=(Draft,), **kw)  # type: ignore[arg-type]
    guard.set_private_texts([MEMORY])
    return guard, log


def test_rejects_types_other_than_the_allowed_protocol_types() -> None:
    guard, log = _guard()
    transmit = Recorder()
    for bad in (Sneaky(query="hi", context=MEMORY), {"query": "hi"}, b"raw bytes"):
        with pytest.raises(DisallowedPayloadError, match="only protocol types"):
            guard.send(bad, "cloud", transmit)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # also a TypeError for callers that expect one
        guard.send("text", "cloud", transmit)  # type: ignore[arg-type]
    assert transmit.sent == []
    assert not log.path.exists()
    assert guard.report.payloads_refused == 4


def test_blocks_a_payload_carrying_a_planted_canary_and_sends_nothing() -> None:
    guard, log = _guard()
    transmit = Recorder()
    payload = Draft(query="What should I cook?", draft=f"Try {CANARY.upper()} tonight")
    with pytest.raises(PrivacyViolation, match="PRIVATE_TEXT in draft") as info:
        guard.send(payload, "cloud", transmit)
    assert "garlic" not in str(info.value)  # the message never echoes private text
    assert transmit.sent == []
    assert not log.path.exists()


def test_canary_split_between_prefix_and_draft_is_still_caught() -> None:
    guard, _ = _guard()
    words = CANARY.split()
    payload = Draft(query="q", prefix=" ".join(words[:5]) + " ", draft=" ".join(words[5:]))
    with pytest.raises(PrivacyViolation, match="<joined>"):
        guard.send(payload, "cloud", Recorder())


def test_token_id_payloads_are_scanned_through_decode_ids() -> None:
    vocab = {i: w for i, w in enumerate([*CANARY.split(), "hello", "world"])}
    guard, _ = _guard(decode_ids=lambda ids: " ".join(vocab[i] for i in ids))
    with pytest.raises(PrivacyViolation, match="PRIVATE_TEXT in ids"):
        guard.send(Draft(query="q", ids=list(range(8))), "cloud", Recorder())
    assert guard.send(Draft(query="q", ids=[8, 9]), "cloud", Recorder()) == b'{"n_accepted": 2}'


def test_audit_record_is_on_disk_before_transmit_and_report_counts() -> None:
    guard, log = _guard()
    transmit = Recorder(log)
    first = Draft(query="What should I cook tonight?", draft="Pasta with", ids=[1, 2, 3])
    assert guard.send(first, "https://cloud.example/verify", transmit) == b'{"n_accepted": 2}'
    guard.send(Draft(query="and dessert?"), "https://cloud.example/verify", transmit)
    assert transmit.records_seen == [1, 2]
    assert transmit.sent[0] == first.model_dump_json().encode()
    report = guard.reset_report()
    assert report.payloads == 2 and report.payloads_refused == 0
    assert report.detectors_fired == {}
    assert report.bytes_sent == sum(map(len, transmit.sent))
    assert report.bytes_received == 2 * len(b'{"n_accepted": 2}')
    assert report.token_ids_sent == 3
    assert report.words_sent == 5 + 2 + 2
    assert report.fields_sent == ["draft", "ids", "query"]
    assert report.destinations == ["https://cloud.example/verify"]
    assert report.audit_seqs == [1, 2]
    assert guard.report == PrivacyReport()  # reset
    assert log.verify().ok


def test_screen_text_keeps_blocked_spans_local_and_pseudonymizes_pii() -> None:
    guard, log = _guard(names=["Ada Lovelace"])
    text = f"Ada Lovelace (ada@example.com) said: {CANARY}. Card 4111 1111 1111 1111."
    result = guard.screen_text(text)
    assert (
        result.safe_text == "[PERSON_1] ([EMAIL_1]) said: [PRIVATE_TEXT_1]. Card [CREDIT_CARD_1]."
    )
    assert [text[s.start : s.end] for s in result.blocked] == [CANARY, "4111 1111 1111 1111"]
    assert len(result.pseudonymized) == 2 and not result.clean
    # The safe text passes the door; the user gets the original back on the device.
    transmit = Recorder(log)
    guard.send(Draft(query=result.safe_text), "cloud", transmit)
    assert b"garlic" not in transmit.sent[0] and b"ada@" not in transmit.sent[0]
    assert guard.restore(result.safe_text) == text
    report = guard.report
    assert report.spans_kept_local == 2 and report.spans_pseudonymized == 2
    assert report.detectors_fired["PRIVATE_TEXT"] == 1


def test_allow_policy_sends_but_still_audits_the_detector() -> None:
    policy = EgressPolicy(actions={**DEFAULT_ACTIONS, "EMAIL_ADDRESS": "allow"})
    guard, log = _guard(policy=policy)
    transmit = Recorder(log)
    guard.send(Draft(query="mail bob@example.com"), "cloud", transmit)
    [record] = list(log.records())
    assert record["detectors"] == {"EMAIL_ADDRESS": 1}
    assert record["policy"]["actions"]["EMAIL_ADDRESS"] == "allow"
    # Pseudonymize means the raw value must not leave either.
    guard2, _ = _guard()
    with pytest.raises(PrivacyViolation, match="EMAIL_ADDRESS"):
        guard2.send(Draft(query="mail bob@example.com"), "cloud", Recorder())


def test_clean_text_is_untouched_and_set_private_texts_replaces() -> None:
    guard, _ = _guard()
    assert guard.screen_text("What is a good pasta recipe?").clean
    guard.set_private_texts(["an entirely different memory about the lake house keys"])
    assert guard.screen_text(CANARY).clean


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
        EgressPolicy(actions={"email": "block"})
    with pytest.raises(ValueError):
        EgressPolicy(actions={"EMAIL_ADDRESS": "drop"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        EgressPolicy(overlap_n=1)
    with pytest.raises(ValueError):
        EgressPolicy(surprise=True)  # type: ignore[call-arg]


def test_guard_needs_allowed_types(specsteer_home: Path) -> None:
    from specsteer import ConfigurationError

    with pytest.raises(ConfigurationError, match="allowed_types"):
        EgressGuard(allowed_types=())
    with pytest.raises(ConfigurationError):
        EgressGuard(allowed_types=(dict,))  # type: ignore[arg-type]
