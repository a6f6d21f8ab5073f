"""The egress pane's data: each audit record as it left the device, and the log's verdict.

Read from the audit log itself (the record the guard wrote and fsynced before each send), never
from the engine's memory of what it meant to send: the page shows what the auditor would see.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from specsteer.privacy import AuditLog

__all__ = ["new_records", "payload_fields", "verification"]

#: The pseudonymizer's placeholder shape, ``[EMAIL_ADDRESS_1]``.
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


def payload_fields(value: Any, path: str = "") -> list[str]:
    """JSON paths of the payload's fields that carry data (``draft.ids[4]`` for 4 ids)."""
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            out.extend(payload_fields(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return [f for i, v in enumerate(value) for f in payload_fields(v, f"{path}[{i}]")]
        return [f"{path}[{len(value)}]"] if value else []
    return [] if value is None or value == "" else [path]


def _view(log: AuditLog, record: dict[str, Any]) -> dict[str, Any]:
    body = log.read_payload(record)
    text = body.decode("utf-8") if body is not None else None
    try:
        fields = payload_fields(json.loads(text)) if text is not None else []
    except ValueError:
        fields = []
    when = datetime.fromtimestamp(float(record.get("time", 0)), UTC)
    return {
        "seq": record.get("seq"),
        "time": when.isoformat(timespec="seconds"),
        "destination": record.get("destination"),
        "payload_type": record.get("payload_type"),
        "size": record.get("size"),
        "sha256": record.get("sha256"),
        "detectors": record.get("detectors", {}),
        "payload": text,
        "fields": fields,
        "placeholders": sorted(set(_PLACEHOLDER.findall(text or ""))),
    }


def new_records(log: AuditLog, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` records with ``seq > after``, oldest first, ready for the page."""
    found: list[dict[str, Any]] = []
    try:
        for record in log.records():
            if int(record.get("seq", 0)) > after:
                found.append(record)
    except ValueError:  # a line being appended right now; the next poll reads it whole
        pass
    return [_view(log, r) for r in found[-limit:]]


def verification(log: AuditLog) -> dict[str, Any]:
    """The audit log's verification: ``ok`` and the one-line summary ``audit verify`` prints."""
    report = log.verify()
    return {"ok": report.ok, "summary": report.summary(), "records": report.records}
