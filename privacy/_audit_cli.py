"""Plain functions behind ``specsteer audit show|verify|export``; the CLI prints what they return.

They open the log read-only: its signing key stays sealed (the public key verifies), so reading
never needs ``SPECSTEER_SIGNING_PASSPHRASE``. A path that names nothing, a folder, or a file that
is not what it should be is an :class:`InvalidInputError` naming the file and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from specsteer._errors import InvalidInputError
from specsteer.privacy._audit import AuditLog
from specsteer.privacy._audit_format import load_public_key
from specsteer.privacy._audit_verify import VerifyReport, verify_log
from specsteer.privacy._keyring import Keyring
from specsteer.privacy._receipts import with_receipts

__all__ = ["audit_export", "audit_show", "audit_verify"]

_WITNESS_FIX = (
    "pass checkpoints from AuditLog.export_checkpoint(): one JSON object, a list of them, or "
    "one per line"
)
_RECEIPT_FIX = "pass the server's last receipt for this device, one JSON object"
_KEY_FIX = "pass the public_key.pem from `specsteer audit export`"


def audit_show(
    path: str | Path | None = None,
    *,
    last: int = 20,
    payloads: bool = True,
    keyring: Keyring | None = None,
) -> str:
    """Render the newest ``last`` records as text, one block per record.

    Args:
        path: The log; default the state root's (when it has none yet, the text says so).
        last: How many records to show (0: all).
        payloads: Include each payload (opening sealed copies with the local key).
        keyring: The keyring; default the state root's.

    Raises:
        InvalidInputError: ``path`` names nothing or a folder, or a file that is not a log.
    """
    log_path = _log_file(path)
    if log_path is None:
        return _no_log_yet()
    with _named_os_errors():
        log = AuditLog(log_path, keyring=keyring, read_only=True)
        records = list(log.records())
        shown = records[-last:] if last > 0 else records
        lines = [f"{log.path}: {len(records)} records, showing {len(shown)}"]
        for rec in shown:
            lines.extend(_render(log, rec, payloads))
    return "\n".join(lines)


def _render(log: AuditLog, rec: Mapping[str, Any], payloads: bool) -> list[str]:
    when = datetime.fromtimestamp(float(rec.get("time", 0)), UTC).isoformat(timespec="seconds")
    fired = ", ".join(f"{k}={v}" for k, v in rec.get("detectors", {}).items()) or "none"
    lines = [
        f"#{rec.get('seq')} {when} -> {rec.get('destination')} {rec.get('payload_type')} "
        f"{rec.get('size')} bytes sha256={str(rec.get('sha256'))[:16]} detectors: {fired}"
    ]
    if rec.get("note"):
        lines.append("    note: " + json.dumps(rec["note"], sort_keys=True))
    if payloads:
        body = log.read_payload(rec)
        lines.append(
            "    " + (body.decode("utf-8") if body is not None else "(payload not stored)")
        )
    return lines


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

    Raises:
        InvalidInputError: There is no log (the state root has none yet, or ``path`` names
            nothing or a folder), or a witness, public key or receipt file is missing or bad.
    """
    log_path = _log_file(path)
    if log_path is None:
        raise InvalidInputError(f"{_no_log_yet()}, so there is nothing to verify")
    last = _receipt(last_receipt) if last_receipt is not None else None
    wit = _witness(witness) if witness is not None else None
    pub = _public_key(public_key) if public_key is not None else None
    with _named_os_errors():
        if pub is not None:
            report = verify_log(log_path, public_key=pub, witness=wit)
        else:
            report = AuditLog(log_path, keyring=keyring, read_only=True).verify(witness=wit)
        if receipts or last is not None:
            report = with_receipts(report, log_path, server_key_id=server_key_id, last=last)
    return report


def audit_export(
    dest: str | Path,
    path: str | Path | None = None,
    *,
    decrypt: bool = False,
    keyring: Keyring | None = None,
) -> Path:
    """Copy the log, checkpoints, public key and a verification report into ``dest``.

    Raises:
        InvalidInputError: There is no log, ``dest`` is a file, or it cannot be written.
    """
    log_path = _log_file(path)
    if log_path is None:
        raise InvalidInputError(f"{_no_log_yet()}, so there is nothing to export")
    out = Path(dest)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(
            f"{out} is a file; pass a folder to write the auditor's bundle into (a new name, or "
            "an existing folder)"
        )
    with _named_os_errors():
        return AuditLog(log_path, keyring=keyring, read_only=True).export(out, decrypt=decrypt)


# -- paths and input files -------------------------------------------------------------------


def _log_file(path: str | Path | None) -> Path | None:
    """The log to read; None when the state root's log (``path`` None) does not exist yet.

    Raises:
        InvalidInputError: ``path`` names a folder, or nothing.
    """
    log = Path(path) if path is not None else AuditLog.default_path()
    if log.is_dir():
        raise InvalidInputError(
            f"{log} is a folder, not an audit log; pass the log file itself, e.g. "
            f"--log {log / 'audit.jsonl'}"
        )
    if log.exists():
        return log
    if path is None:
        return None
    raise InvalidInputError(
        f"no audit log at {log}; check the path given to --log, or leave --log out to read this "
        f"state root's log ({AuditLog.default_path()})"
    )


def _no_log_yet() -> str:
    return (
        f"no audit log yet at {AuditLog.default_path()}: nothing has left this device from this "
        "state root ($SPECSTEER_HOME)"
    )


@contextmanager
def _named_os_errors() -> Iterator[None]:
    """A file that cannot be read or written becomes one line naming it."""
    try:
        yield
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise InvalidInputError(
            f"cannot use{where}: {e.strerror or e}; check the path and its permissions"
        ) from e


def _read_input(path: str | Path, what: str, fix: str) -> bytes:
    file = Path(path)
    try:
        return file.read_bytes()
    except FileNotFoundError as e:
        raise InvalidInputError(f"no {what} at {file}; {fix}") from e
    except IsADirectoryError as e:
        raise InvalidInputError(f"the {what} {file} is a folder; {fix}") from e
    except OSError as e:
        raise InvalidInputError(f"cannot read the {what} {file} ({e.strerror}); {fix}") from e


def _read_text(path: str | Path, what: str, fix: str) -> str:
    try:
        return _read_input(path, what, fix).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"the {what} {path} is not UTF-8 text (byte {e.start}); {fix}"
        ) from e


def _json(text: str, where: str, fix: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{where} is not JSON ({e.msg}, line {e.lineno}); {fix}") from e


def _witness(value: str | Path | Mapping[str, Any]) -> Mapping[str, Any] | list[Mapping[str, Any]]:
    """Checkpoints from a dict, or a file of one JSON object, a list of them, or JSON lines."""
    if isinstance(value, Mapping):
        return value
    text = _read_text(value, "witness", _WITNESS_FIX)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        loaded = [
            _json(line, f"line {n} of the witness {value}", _WITNESS_FIX)
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    items = [loaded] if isinstance(loaded, dict) else loaded
    if not isinstance(items, list) or not items or not all(isinstance(x, dict) for x in items):
        raise InvalidInputError(f"the witness {value} holds no checkpoints; {_WITNESS_FIX}")
    return items


def _receipt(value: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    text = _read_text(value, "last receipt", _RECEIPT_FIX)
    loaded = _json(text, f"the last receipt {value}", _RECEIPT_FIX)
    if not isinstance(loaded, dict):
        raise InvalidInputError(f"{value} must hold one receipt, a JSON object; {_RECEIPT_FIX}")
    return loaded


def _public_key(path: str | Path) -> Ed25519PublicKey:
    data = _read_input(path, "public key", _KEY_FIX)
    try:
        return load_public_key(data)
    except InvalidInputError as e:
        raise InvalidInputError(
            f"{path} is not an Ed25519 public key in PEM form; {_KEY_FIX}"
        ) from e
