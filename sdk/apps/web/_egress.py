"""The egress pane's data: each audit record as it left the device, and the log's verdict.

Read from the audit log itself (the record the guard wrote and fsynced before each send), never
from the engine's memory of what it meant to send: the page shows what the auditor would see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from specsteer.privacy import AuditLog

__all__ = ["RecordPage", "new_records", "payload_fields", "records_after", "verification"]

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


@dataclass(frozen=True)
class RecordPage:
    """One page of audit records for the egress pane.

    Attributes:
        records: The records, oldest first, ready for the page.
        more: Whether records after the last of these remain (ask again with its ``seq``).
    """

    records: list[dict[str, Any]]
    more: bool


def _records_after(log: AuditLog, after: int) -> Iterator[dict[str, Any]]:
    try:
        for record in log.records():
            if int(record.get("seq", 0)) > after:
                yield record
    except ValueError:  # a line being appended right now; the next poll reads it whole
        return


def records_after(log: AuditLog, after: int = 0, limit: int = 200) -> RecordPage:
    """The oldest ``limit`` records with ``seq > after``, and whether more remain after them.

    Paging with the last record's ``seq`` as the next ``after`` reads every record once.
    """
    found: list[dict[str, Any]] = []
    for record in _records_after(log, after):
        if len(found) == limit:
            return RecordPage([_view(log, r) for r in found], more=True)
        found.append(record)
    return RecordPage([_view(log, r) for r in found], more=False)


def new_records(log: AuditLog, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` records with ``seq > after``, oldest first, ready for the page.

    For reading every record, page with :func:`records_after`.
    """
    found = list(_records_after(log, after))
    return [_view(log, r) for r in found[-limit:]]


def verification(log: AuditLog) -> dict[str, Any]:
    """The audit log's verification: ``ok`` and the one-line summary ``audit verify`` prints."""
    report = log.verify()
    return {"ok": report.ok, "summary": report.summary(), "records": report.records}
