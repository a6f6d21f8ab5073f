"""Receipts: the cloud as the audit log's witness.

The cloud receives every payload anyway, so it can vouch for what it received. A receipt is the
server's Ed25519 signature over::

    {"v": 1, "key_id": ..., "key": <its public key>, "seq": <its counter>,
     "sha256": <of the exact bytes it received>, "size": ..., "prev": <link>}

and the device stores it beside the audit record of that payload (``<log>.receipts``). The
``prev`` link chains the receipts: each request carries the digest of the receipt the device got
last (``receipt_prev``, inside the bytes the next receipt signs), and the server copies it into
the receipt. So whoever holds the device's keys and rewrites the log can neither change a
record (its sha256 no longer matches the signed one), nor drop one from the middle (the next
receipt names the dropped record's receipt), nor forge a receipt (that needs the server's key).

What receipts cannot show alone: records cut off the *end* together with their receipts leave a
shorter chain that is intact. Catching that needs the server's last receipt for this device,
kept off the device (:func:`check_receipts` ``last=``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from specsteer.privacy._audit_format import canonical, read_lines
from specsteer.privacy._audit_verify import VerifyProblem, VerifyReport
from specsteer.privacy._keyring import Keyring

__all__ = [
    "ReceiptSigner",
    "check_receipts",
    "key_id",
    "read_receipts",
    "receipt_link",
    "with_receipts",
]

_FORMAT = 1
_SIGNED = ("v", "key_id", "key", "seq", "sha256", "size", "prev")
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def key_id(public_raw: bytes) -> str:
    """A server key's short id: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def receipt_link(receipt: Mapping[str, Any]) -> str:
    """The digest the next request carries as ``receipt_prev`` (64 letters ``a``-``p``, so the
    egress guard reads it as a generated id, never as user text)."""
    return hashlib.sha256(canonical(receipt)).hexdigest().translate(_HEX_TO_LETTERS)


class ReceiptSigner:
    """The server's side: signs a receipt for each body it receives.

    Args:
        key: The server's Ed25519 key (keep it across restarts, so receipts stay checkable
            against one key id).
    """

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()
        self.key_id = key_id(self._public)
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def for_this_machine(cls, keyring: Keyring | None = None) -> ReceiptSigner:
        """The signer with this machine's receipt key (made on first use, kept in the keyring)."""
        return cls((keyring if keyring is not None else Keyring()).receipt_signing_key())

    def sign(self, body: bytes, prev: str | None) -> dict[str, Any]:
        """The receipt for ``body``, the exact bytes received; ``prev`` is the request's
        ``receipt_prev``."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        fields: dict[str, Any] = {
            "v": _FORMAT,
            "key_id": self.key_id,
            "key": base64.b64encode(self._public).decode("ascii"),
            "seq": seq,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "prev": prev or "",
        }
        fields["sig"] = base64.b64encode(self._key.sign(canonical(fields))).decode("ascii")
        return fields


def _signature_problem(receipt: Mapping[str, Any], pinned: str | None) -> str | None:
    try:
        raw = base64.b64decode(receipt["key"], validate=True)
        message = canonical({k: receipt[k] for k in _SIGNED})
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(receipt["sig"]), message)
    except (KeyError, ValueError, TypeError, InvalidSignature):
        return "its receipt's signature is invalid or its fields are missing (a forged receipt)"
    if receipt.get("key_id") != key_id(raw):
        return "its receipt names a key id that is not its key's"
    if pinned is not None and receipt["key_id"] != pinned:
        return f"its receipt is signed by server key {receipt['key_id']}, not {pinned}"
    return None


def _record_problem(
    record: Mapping[str, Any], receipt: Mapping[str, Any] | None, link: str, pinned: str | None
) -> str | None:
    if receipt is None:
        return "it has no receipt (the server gave none, or it was removed)"
    bad = _signature_problem(receipt, pinned)
    if bad is not None:
        return bad
    if receipt.get("sha256") != record.get("sha256") or receipt.get("size") != record.get("size"):
        return "it does not match the bytes the server signed for (the record was rewritten)"
    if receipt.get("prev") != link:
        return (
            "its receipt follows another receipt than the previous record's (a record before it "
            "was removed, with its receipt)"
        )
    return None


def check_receipts(
    records: Sequence[Mapping[str, Any]],
    receipts: Mapping[int, Mapping[str, Any]],
    *,
    server_key_id: str | None = None,
    last: Mapping[str, Any] | None = None,
) -> list[VerifyProblem]:
    """Check every record against its receipt and the receipts' chain.

    Args:
        records: The audit records, in order.
        receipts: The stored receipts by record ``seq``.
        server_key_id: The server key id to require (as ``specsteer serve`` printed it).
        last: The server's last receipt for this device, kept off the device: then a cut tail
            is caught too.

    Returns:
        One problem per record that fails, in order (empty: every record is vouched for).
    """
    problems: list[VerifyProblem] = []
    link = ""
    links: set[str] = set()
    for record in records:
        seq = int(record.get("seq", 0))
        receipt = receipts.get(seq)
        why = _record_problem(record, receipt, link, server_key_id)
        if why is not None:
            problems.append(VerifyProblem(seq, f"receipt check: record {seq}: {why}"))
        if receipt is not None:
            link = receipt_link(receipt)
            links.add(link)
    if last is not None:
        after = len(records) + 1
        bad = _signature_problem(last, server_key_id)
        if bad is not None:
            problems.append(VerifyProblem(after, f"the server's last receipt: {bad}"))
        elif receipt_link(last) not in links:
            problems.append(
                VerifyProblem(
                    after,
                    "the server's last receipt is for a record this log does not hold: records "
                    "were cut off the end",
                )
            )
    return problems


def read_receipts(path: Path) -> dict[int, dict[str, Any]]:
    """The receipts stored beside a log (``<log>.receipts``), by record ``seq``."""
    found: dict[int, dict[str, Any]] = {}
    for line in read_lines(path):
        try:
            entry = json.loads(line)
            found[int(entry["seq"])] = dict(entry["receipt"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn or damaged line: that record then counts as without a receipt
    return found


def with_receipts(
    report: VerifyReport,
    log_path: Path,
    *,
    server_key_id: str | None = None,
    last: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """``report`` with every record of ``log_path`` also checked against its receipt."""
    records = []
    for line in read_lines(log_path):
        try:
            rec = json.loads(line)
        except ValueError:
            break  # verify_log already names it
        if isinstance(rec, dict):
            records.append(rec)
    receipts = read_receipts(log_path.with_name(log_path.name + ".receipts"))
    problems = check_receipts(records, receipts, server_key_id=server_key_id, last=last)
    merged = tuple(sorted((*report.problems, *problems), key=lambda p: p.seq))
    return dataclasses.replace(
        report,
        ok=not merged,
        problems=merged,
        receipts_checked=len(records),
        tail_witnessed=last is not None,
        receipt_key_id=next((str(r.get("key_id")) for r in receipts.values()), None),
        receipt_key_pinned=server_key_id is not None,
    )
