"""The audit log: chained HMACs, signed checkpoints, tamper detection that names the record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specsteer.privacy import (
    AuditLog,
    Keyring,
    audit_export,
    audit_show,
    audit_verify,
    verify_log,
)


def _fill(log: AuditLog, n: int) -> None:
    for i in range(1, n + 1):
        log.append(
            destination="https://cloud.example/verify",
            payload=json.dumps({"request_id": f"r{i}", "draft": f"word {i}"}).encode(),
            payload_type="VerifyRequest",
            detectors={"EMAIL_ADDRESS": i % 2},
            policy={"default": "block"},
        )


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def log() -> AuditLog:
    log = AuditLog()
    _fill(log, 6)
    return log


def test_clean_log_verifies_and_lives_under_the_state_root(
    log: AuditLog, specsteer_home: Path
) -> None:
    assert log.path == specsteer_home / "audit" / "audit.jsonl"
    report = log.verify()
    assert report.ok and report.records == 6 and report.checkpoints == 6 and report.hmac_checked
    assert report.first_bad is None
    assert report.summary().startswith("ok: 6 records")
    recs = list(log.records())
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert json.loads(recs[2]["payload"])["draft"] == "word 3"
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"


def test_edited_record_is_named(log: AuditLog) -> None:
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["destination"] = "https://elsewhere.example"
    lines[2] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    report = log.verify()
    assert not report.ok
    assert report.first_bad is not None and report.first_bad.seq == 3
    assert "HMAC mismatch" in report.first_bad.reason
    assert len(report.problems) == 1  # later records are unverifiable, not reported as missing


def test_edited_payload_with_fixed_sha_is_named(log: AuditLog) -> None:
    import hashlib

    lines = _lines(log)
    rec = json.loads(lines[3])
    rec["payload"] = rec["payload"].replace("word 4", "word X")
    rec["sha256"] = hashlib.sha256(rec["payload"].encode()).hexdigest()
    lines[3] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    assert log.verify().first_bad.seq == 4  # type: ignore[union-attr]


def test_deleted_record_is_named(log: AuditLog) -> None:
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    bad = log.verify().first_bad
    assert bad is not None and bad.seq == 2 and "missing" in bad.reason


def test_reordered_records_are_named(log: AuditLog) -> None:
    lines = _lines(log)
    lines[3], lines[4] = lines[4], lines[3]
    _write(log, lines)
    bad = log.verify().first_bad
    assert bad is not None and bad.seq == 4


def test_inserted_record_is_named(log: AuditLog) -> None:
    lines = _lines(log)
    forged = json.loads(lines[1])
    forged["destination"] = "https://attacker.example"
    renumbered = []
    for line in lines[2:]:
        rec = json.loads(line)
        rec["seq"] += 1
        renumbered.append(json.dumps(rec, sort_keys=True))
    forged["seq"] = 3
    forged["prev"] = json.loads(lines[1])["hmac"]
    _write(log, [*lines[:2], json.dumps(forged, sort_keys=True), *renumbered])
    bad = log.verify().first_bad
    assert bad is not None and bad.seq == 3


def test_cut_tail_is_caught_by_checkpoints(log: AuditLog) -> None:
    _write(log, _lines(log)[:4])
    report = log.verify()
    assert not report.ok
    bad = report.first_bad
    assert bad is not None and bad.seq == 5 and "tail was cut" in bad.reason


def test_cut_tail_and_checkpoints_is_caught_by_a_witness(log: AuditLog) -> None:
    witness = log.export_checkpoint()
    assert witness["seq"] == 6 and "sig" in witness
    cps = log.checkpoints_path.read_text().splitlines()
    _write(log, _lines(log)[:3])
    log.checkpoints_path.write_text("".join(c + "\n" for c in cps[:3]))
    assert log.verify().ok  # consistent on the device alone...
    bad = log.verify(witness=witness).first_bad  # ...but not against the outside witness
    assert bad is not None and bad.seq == 4 and "witness" in bad.reason


def test_forged_checkpoint_signature_is_caught(log: AuditLog) -> None:
    cps = log.checkpoints_path.read_text().splitlines()
    cp = json.loads(cps[-1])
    cp["seq"] = 99
    log.checkpoints_path.write_text("\n".join([*cps, json.dumps(cp)]) + "\n")
    bad = log.verify().first_bad
    assert bad is not None and "signature invalid" in bad.reason


def test_bad_checkpoint_signature_names_the_checkpoint_line(log: AuditLog, tmp_path: Path) -> None:
    cps = log.checkpoints_path.read_text().splitlines()
    cp = json.loads(cps[-1])
    cp["sig"] = "A" + cp["sig"][1:] if cp["sig"][0] != "A" else "B" + cp["sig"][1:]
    log.checkpoints_path.write_text("".join(c + "\n" for c in [*cps[:-1], json.dumps(cp)]))
    report = log.verify()
    assert report.first_bad is not None and report.first_bad.checkpoint == "checkpoint line 6"
    summary = report.summary()
    assert summary.startswith("FAILED at checkpoint line 6: signature invalid"), summary
    assert "record 7" not in summary
    exported = json.loads((log.export(tmp_path / "bundle") / "verify.json").read_text())
    assert exported["problems"][0]["where"] == "checkpoint line 6"


def test_outside_auditor_with_public_key_only(log: AuditLog) -> None:
    pem = log.public_key_pem()
    assert verify_log(log.path, public_key=pem).ok
    lines = _lines(log)
    rec = json.loads(lines[1])
    rec["destination"] = "https://elsewhere.example"
    lines[1] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    report = verify_log(log.path, public_key=pem)
    assert not report.hmac_checked
    assert report.first_bad is not None and report.first_bad.seq == 2


def test_reopen_continues_the_chain(specsteer_home: Path) -> None:
    _fill(AuditLog(), 3)
    again = AuditLog()
    _fill(again, 2)
    assert [r["seq"] for r in again.records()] == [1, 2, 3, 1 + 3, 2 + 3]
    assert again.verify().ok


def test_torn_last_line_is_moved_aside_and_chain_continues(log: AuditLog) -> None:
    with open(log.path, "ab") as f:
        f.write(b'{"seq": 7, "destination": "half-writ')
    _fill(log, 1)
    assert log.verify().ok
    assert log.path.with_name("audit.jsonl.torn").read_bytes().startswith(b'{"seq": 7')


def _tear_last_checkpoint(log: AuditLog) -> bytes:
    """Cut the last checkpoint line short, as a full disk does; return the torn bytes."""
    data = log.checkpoints_path.read_bytes()
    start = data.rindex(b"\n", 0, len(data) - 1) + 1
    log.checkpoints_path.write_bytes(data[:-40])
    return data[start:-40]


def test_torn_last_checkpoint_is_named_then_moved_aside_when_the_log_is_opened(
    log: AuditLog,
) -> None:
    torn = _tear_last_checkpoint(log)
    report = AuditLog(read_only=True).verify()
    assert report.summary().startswith("FAILED at checkpoint line 6: torn")
    assert "record 7" not in report.summary()

    again = AuditLog()  # a session starts
    assert again.checkpoints_path.with_name("audit.jsonl.checkpoints.torn").read_bytes() == (
        torn + b"\n"
    )
    report = again.verify()
    assert report.ok and report.checkpoints == 5 and report.unchecked_tail == 1
    _fill(again, 1)
    assert again.verify().ok and again.verify().checkpoints == 6


def test_torn_last_checkpoint_is_moved_aside_before_the_next_one(log: AuditLog) -> None:
    _tear_last_checkpoint(log)
    _fill(log, 1)  # the running writer's next checkpoint
    report = log.verify()
    assert report.ok and report.records == 7 and report.checkpoints == 6


def test_short_writes_are_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog()
    real_write = os.write
    with monkeypatch.context() as m:  # a nearly full disk takes 10 bytes per write
        m.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:10])))
        _fill(log, 2)
    report = log.verify()
    assert report.ok and report.records == 2 and report.checkpoints == 2


def test_sealed_storage_keeps_payload_unreadable_without_the_keyring() -> None:
    log = AuditLog(Path(os.environ["SPECSTEER_HOME"]) / "sealed.jsonl", payload_storage="sealed")
    log.append(destination="d", payload=b'{"draft":"hello"}', payload_type="T")
    raw = log.path.read_bytes()
    assert b"hello" not in raw
    [rec] = list(log.records())
    assert log.read_payload(rec) == b'{"draft":"hello"}'
    assert log.verify().ok


def test_threads_append_into_one_chain() -> None:
    import threading

    log = AuditLog()
    threads = [threading.Thread(target=_fill, args=(log, 5)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.records == 20


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=12),
    victim=st.integers(0, 11),
    data=st.data(),
)
def test_random_appends_verify_and_any_single_edit_is_named(
    specsteer_home: Path, sizes: list[int], victim: int, data: st.DataObject
) -> None:
    path = specsteer_home / f"h{time.perf_counter_ns()}.jsonl"
    log = AuditLog(path)
    for n in sizes:
        payload = data.draw(st.text(min_size=n, max_size=n)).encode("utf-8", "surrogatepass")
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            payload = b"x" * n
        log.append(destination="d", payload=payload, payload_type="T")
    assert log.verify().ok
    victim %= len(sizes)
    lines = _lines(log)
    rec = json.loads(lines[victim])
    rec["size"] += 1
    lines[victim] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    bad = log.verify().first_bad
    assert bad is not None and bad.seq == victim + 1


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pydantic import BaseModel
    from specsteer.privacy import AuditLog, EgressGuard

    class Req(BaseModel):
        query: str

    marker = Path(sys.argv[1])
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(Req,))

    def transmit(data: bytes) -> bytes:
        marker.write_text("audit written, about to send")
        time.sleep(60)  # the parent kills us here, before any byte leaves
        return b""

    guard.send(Req(query="what is the weather in Lisbon"), "https://cloud.example", transmit)
    """
)


def test_killed_between_audit_write_and_send(tmp_path: Path, specsteer_home: Path) -> None:
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, "child exited early"
            assert time.monotonic() < deadline, "child never reached the send"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Restart: the log verifies and shows the payload that was about to leave.
    log = AuditLog()
    assert log.verify().ok
    shown = audit_show(last=5)
    assert "what is the weather in Lisbon" in shown and "https://cloud.example" in shown
    _fill(log, 1)
    assert log.verify().ok


def test_cli_functions(log: AuditLog, tmp_path: Path) -> None:
    shown = audit_show(last=2)
    assert (
        "6 records, showing 2" in shown and "#5 " in shown and "#6 " in shown and "#4 " not in shown
    )
    assert '"word 6"' in shown
    assert audit_verify().ok
    witness_file = tmp_path / "witness.json"
    witness_file.write_text(json.dumps(log.export_checkpoint()))
    out = audit_export(tmp_path / "export", decrypt=True)
    assert {p.name for p in out.iterdir()} == {
        "audit.jsonl",
        "audit.jsonl.checkpoints",
        "audit.jsonl.receipts",
        "public_key.pem",
        "verify.json",
        "payloads.jsonl",
    }
    assert json.loads((out / "verify.json").read_text())["ok"] is True
    # An outside auditor verifies the export with the public key and the witness only.
    report = audit_verify(
        out / "audit.jsonl", witness=witness_file, public_key=out / "public_key.pem"
    )
    assert report.ok and not report.hmac_checked
    _write(log, _lines(log)[:5])
    assert not audit_verify(witness=witness_file).ok
    assert "FAILED at record 6" in audit_verify().summary()


def test_keyring_is_shared_with_the_audit_log(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys", passphrase="pw")
    log = AuditLog(tmp_path / "a.jsonl", keyring=ring)
    _fill(log, 2)
    assert (
        AuditLog(tmp_path / "a.jsonl", keyring=Keyring(tmp_path / "keys", passphrase="pw"))
        .verify()
        .ok
    )
    assert not AuditLog(tmp_path / "a.jsonl", keyring=Keyring(tmp_path / "other")).verify().ok
