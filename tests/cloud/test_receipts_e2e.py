"""Receipts over real HTTP: the reference server in its own process signs what it received, and
the device's log checks out against it, until someone holding the device's keys drops a record."""

from __future__ import annotations

import json
from pathlib import Path

from specsteer import Assistant, PrivateEgress
from specsteer.cloud_adapter import HttpVerifier
from specsteer.privacy import AuditLog, Keyring, audit_verify
from specsteer.testing import tiny_backend

from .conftest import start_server, stop_server


def test_the_servers_receipts_witness_every_record(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        assert server.proc.stdout is not None
        key_line = server.proc.stdout.readline()
        assert key_line.startswith("receipt key id: ")
        key_id = key_line.split(": ", 1)[1].strip()
        log = AuditLog(tmp_path / "audit.jsonl", keyring=Keyring(tmp_path / "keys"))
        with HttpVerifier(server.url, token=server.token) as http:
            assistant = Assistant(tiny_backend(0), http, privacy=PrivateEgress(audit_log=log))
            for question in ("what is my plan for friday ?", "and for the weekend ?"):
                assistant.generate(question, context="dinner in rome", max_new_tokens=12, lam=2.0)
    finally:
        stop_server(server)

    records = list(log.records())
    assert len(records) >= 3
    requests = [json.loads(r["payload"]) for r in records]
    assert "receipt_prev" not in requests[0] or requests[0]["receipt_prev"] is None
    assert all(r.get("receipt_prev") for r in requests[1:]), "each request links the last receipt"
    report = audit_verify(log.path, keyring=Keyring(tmp_path / "keys"), receipts=True,
                          server_key_id=key_id)  # fmt: skip
    assert report.ok and report.receipts_checked == len(records), report.summary()
    assert audit_verify(log.path, keyring=Keyring(tmp_path / "keys"), receipts=True,
                        server_key_id="0" * 16).ok is False  # fmt: skip

    # Someone with every device key drops record 2 and rebuilds a fully valid log.
    receipts = [json.loads(x) for x in log.receipts_path.read_text().splitlines()]
    for path in (log.path, log.checkpoints_path, log.receipts_path):
        path.unlink()
    forged = AuditLog(log.path, keyring=Keyring(tmp_path / "keys"))
    for i, record in enumerate(records, 1):
        if i == 2:
            continue
        new = forged.append(destination=record["destination"], payload=record["payload"].encode(),
                            payload_type=record["payload_type"])  # fmt: skip
        forged.attach_receipt(new.seq, receipts[i - 1]["receipt"])
    assert forged.verify().ok
    caught = forged.verify(receipts=True, server_key_id=key_id)
    assert not caught.ok and caught.first_bad is not None and caught.first_bad.seq == 2
