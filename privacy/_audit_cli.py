"""Plain functions behind ``specsteer audit show|verify|export``; the CLI prints what they return."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specsteer._errors import InvalidInputError
from specsteer.privacy._audit import AuditLog
from specsteer.privacy._audit_verify import VerifyReport, verify_log
from specsteer.privacy._keyring import Keyring
from specsteer.privacy._receipts import with_receipts

__all__ = ["audit_export", "audit_show", "audit_verify"]


def _open(path: str | Path | None, keyring: Keyring | None) -> AuditLog:
    return AuditLog(path, keyring=keyring)


def audit_show(
    path: str | Path | None = None,
    *,
    last: int = 20,
    payloads: bool = True,
    keyring: Keyring | None = None,
) -> str:
    """Render the newest ``last`` records as text, one block per record.

    Args:
        path: The log; default the state root's.
        last: How many records to show (0: all).
        payloads: Include each payload (opening sealed copies with the local key).
        keyring: The keyring; default the state root's.
    """
    log = _open(path, keyring)
    records = list(log.records())
    shown = records[-last:] if last > 0 else records
    lines = [f"{log.path}: {len(records)} records, showing {len(shown)}"]
    for rec in shown:
        when = datetime.fromtimestamp(float(rec.get("time", 0)), UTC).isoformat(timespec="seconds")
        fired = ", ".join(f"{k}={v}" for k, v in rec.get("detectors", {}).items()) or "none"
        lines.append(
            f"#{rec.get('seq')} {when} -> {rec.get('destination')} {rec.get('payload_type')} "
            f"{rec.get('size')} bytes sha256={str(rec.get('sha256'))[:16]} detectors: {fired}"
        )
        if rec.get("note"):
            lines.append("    note: " + json.dumps(rec["note"], sort_keys=True))
        if payloads:
            body = log.read_payload(rec)
            lines.append(
                "    " + (body.decode("utf-8") if body is not None else "(payload not stored)")
            )
    return "\n".join(lines)


def audit_verify(
    path: str | Path | None = None,
    *,
    witness: str | Path | Mapping[str, Any] | None = None,
    public_key: str | Path | None = None,
    keyring: Keyring | None = None,
    receipts: bool = False,
    server_key_id: str | None = None,
    last_receipt: str | Path | Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Verify a log; :meth:`VerifyReport.summary` is the line to print.

    Args:
        path: The log; default the state root's.
        witness: A checkpoint kept elsewhere: a dict, or a JSON / JSONL file of them.
        public_key: A PEM file: verify as an outside auditor (no HMAC key, no local keyring).
        keyring: The keyring for a full local check; default the state root's.
        receipts: Also check every record against the server's receipt for it.
        server_key_id: The server key id the receipts must be signed with.
        last_receipt: The server's last receipt for this device (a dict or a JSON file).
    """
    last = _json_file(last_receipt) if last_receipt is not None else None
    report = _verify(path, witness, public_key, keyring)
    if receipts or last is not None:
        log_path = Path(path) if path is not None else AuditLog.default_path()
        report = with_receipts(report, log_path, server_key_id=server_key_id, last=last)
    return report


def _json_file(value: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    loaded = json.loads(Path(value).read_text())
    if not isinstance(loaded, dict):
        raise InvalidInputError(f"{value} must hold one receipt, a JSON object")
    return loaded


def _verify(
    path: str | Path | None,
    witness: str | Path | Mapping[str, Any] | None,
    public_key: str | Path | None,
    keyring: Keyring | None,
) -> VerifyReport:
    wit: list[Mapping[str, Any]] | Mapping[str, Any] | None
    if witness is None or isinstance(witness, Mapping):
        wit = witness
    else:
        text = Path(witness).read_text().strip()
        try:
            loaded = json.loads(text)
            wit = loaded if isinstance(loaded, list | dict) else []
        except json.JSONDecodeError:
            wit = [json.loads(line) for line in text.splitlines() if line.strip()]
    if public_key is not None:
        log_path = Path(path) if path is not None else AuditLog.default_path()
        return verify_log(log_path, public_key=Path(public_key).read_bytes(), witness=wit)
    return _open(path, keyring).verify(witness=wit)


def audit_export(
    dest: str | Path,
    path: str | Path | None = None,
    *,
    decrypt: bool = False,
    keyring: Keyring | None = None,
) -> Path:
    """Copy the log, checkpoints, public key and a verification report into ``dest``."""
    return _open(path, keyring).export(dest, decrypt=decrypt)
