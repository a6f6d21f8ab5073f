"""Receipts as the audit log's witness: what a key holder's rewrite of the log cannot hide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict

from specsteer.privacy import AuditLog, EgressGuard, Keyring
from specsteer.privacy._receipts import ReceiptSigner

SERVER = ReceiptSigner(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


class Request(BaseModel):
    """A payload type with the protocol's link field."""

    model_config = ConfigDict(extra="forbid")
    query: str
    receipt_prev: str | None = None


def _server(body: bytes) -> bytes:
    """The cloud: signs a receipt over the exact bytes it got, linked as the request says."""
    prev = json.loads(body).get("receipt_prev")
    return json.dumps({"answer": "ok", "receipt": SERVER.sign(body, prev)}).encode()


def _sent(log: AuditLog, queries: list[str]) -> None:
    guard = EgressGuard(audit_log=log, allowed_types=(Request,))
    for q in queries:
        guard.send(Request(query=q), "https://cloud.example", _server)


QUERIES = [f"plan for day {i}" for i in range(1, 6)]


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", keyring=Keyring(tmp_path / "keys"))
    _sent(log, QUERIES)
    return log


def _rewrite(log: AuditLog, keep: list[int], payloads: dict[int, str] | None = None) -> None:
    """What someone holding the device's keys can do: a fresh, fully valid log and checkpoints
    of the records they keep (renumbered), with those records' receipts moved along."""
    records = list(log.records())
    receipts = [json.loads(x) for x in log.receipts_path.read_text().splitlines()]
    for path in (log.path, log.checkpoints_path, log.receipts_path):
        path.unlink()
    again = AuditLog(log.path, keyring=Keyring(log.path.parent / "keys"))
    for i in keep:
        body = (payloads or {}).get(i, records[i - 1]["payload"]).encode()
        new = again.append(destination="https://cloud.example", payload=body, payload_type="Request")
        again.attach_receipt(new.seq, receipts[i - 1]["receipt"])


def test_honest_log_matches_every_receipt_and_says_what_is_left(log: AuditLog) -> None:
    stored = [json.loads(x) for x in log.receipts_path.read_text().splitlines()]
    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5]
    sent = [json.loads(r["payload"]) for r in log.records()]
    assert sent[0].get("receipt_prev") is None and sent[1]["receipt_prev"]  # linked from the 2nd
    report = log.verify(receipts=True, server_key_id=SERVER.key_id)
    assert report.ok and report.receipts_checked == 5
    assert "all 5 match the server's receipts" in report.summary()
    assert "cannot show records cut off the end together with their receipts" in report.summary()
    plain = log.verify()
    assert plain.ok and "re-signed by someone holding this device's keys" in plain.summary()


def test_a_record_dropped_from_the_middle_by_a_key_holder_is_caught(log: AuditLog) -> None:
    _rewrite(log, keep=[1, 2, 4, 5])
    assert log.verify().ok, "without a witness the rewrite is invisible"
    report = log.verify(receipts=True)
    assert not report.ok and report.first_bad is not None and report.first_bad.seq == 3
    assert "a record before it was removed" in report.first_bad.reason


def test_a_rewritten_record_is_caught(log: AuditLog) -> None:
    _rewrite(log, keep=[1, 2, 3, 4, 5], payloads={3: '{"query":"nothing to see"}'})
    assert log.verify().ok
    report = log.verify(receipts=True)
    assert [p.seq for p in report.problems] == [3]
    assert "rewritten" in report.problems[0].reason


def test_a_cut_tail_needs_the_servers_last_receipt(log: AuditLog) -> None:
    last = json.loads(log.receipts_path.read_text().splitlines()[-1])["receipt"]
    _rewrite(log, keep=[1, 2, 3])
    assert log.verify(receipts=True).ok, "receipts alone cannot see a cut tail"
    report = log.verify(receipts=True, last_receipt=last)
    assert not report.ok and "cut off the end" in report.summary()


def test_receipts_forged_with_another_key_are_refused_when_the_key_is_pinned(log: AuditLog) -> None:
    forger = ReceiptSigner(Ed25519PrivateKey.generate())
    lines = log.receipts_path.read_text().splitlines()
    first = json.loads(lines[0])
    record = next(log.records())
    body = str(record["payload"]).encode()
    first["receipt"] = forger.sign(body, None)
    log.receipts_path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    report = log.verify(receipts=True, server_key_id=SERVER.key_id)
    assert not report.ok and "not " + SERVER.key_id in report.problems[0].reason
    tampered = json.loads(lines[1])
    tampered["receipt"]["seq"] = 99
    log.receipts_path.write_text("\n".join([lines[0], json.dumps(tampered), *lines[2:]]) + "\n")
    assert "forged" in log.verify(receipts=True).problems[0].reason
