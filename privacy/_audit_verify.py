"""Verifying an audit log: the two chains record by record, then every signed checkpoint.

:func:`verify_log` walks the records (:func:`_walk`), naming the first one that breaks the
sequence, the linkage, the HMAC (with the key) or its payload hash, and remembers the chain head
after each good record. It then checks each checkpoint -- from the side file and from any
witness -- against those heads (:func:`_check_checkpoint`): a checkpoint signed for a record the
log no longer holds means its tail was cut.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from specsteer.privacy._audit_format import (
    GENESIS,
    body,
    canonical,
    chain_digest,
    chain_hmac,
    checkpoint_message,
    load_public_key,
    read_lines,
    read_lines_torn,
)

__all__ = ["VerifyProblem", "VerifyReport", "verify_log"]

Witness = Iterable[Mapping[str, Any]] | Mapping[str, Any]


@dataclass(frozen=True)
class VerifyProblem:
    """One failure found by :func:`verify_log`: the record (``seq``) and why.

    Attributes:
        seq: The record at fault; for a checkpoint's own fault, the record after the last good
            one (problems sort by it).
        reason: Why, in words.
        checkpoint: The checkpoint at fault when the fault is its own (unreadable, torn, badly
            signed), e.g. ``"checkpoint line 3"``; empty when a record is at fault.
    """

    seq: int
    reason: str
    checkpoint: str = ""

    @property
    def where(self) -> str:
        """What is at fault, for people: ``"record 3"`` or ``"checkpoint line 3"``."""
        return self.checkpoint or f"record {self.seq}"


@dataclass(frozen=True)
class VerifyReport:
    """The result of verifying an audit log.

    Attributes:
        ok: True when no problem was found.
        records: Records read (including bad ones).
        checkpoints: Signed checkpoints checked (side file and witnesses).
        hmac_checked: Whether HMACs were checked (needs the audit key).
        problems: Every problem, sorted by ``seq``.
        unchecked_tail: Records after the newest checkpoint (not yet covered by a signature).
        witnessed: Whether a checkpoint kept off the device (a witness) was checked.
        receipts_checked: Records checked against the server's receipts (0: receipts were not
            checked).
        tail_witnessed: Whether the server's last receipt was checked (a cut tail is caught).
        receipt_key_id: The server key the receipts are signed with.
        receipt_key_pinned: Whether that key id was required (else compare it yourself with
            the one the server printed: receipts signed with another key prove nothing).
    """

    ok: bool
    records: int
    checkpoints: int
    hmac_checked: bool
    problems: tuple[VerifyProblem, ...] = field(default=())
    unchecked_tail: int = 0
    witnessed: bool = False
    receipts_checked: int = 0
    tail_witnessed: bool = False
    receipt_key_id: str | None = None
    receipt_key_pinned: bool = False

    @property
    def cannot_show(self) -> str:
        """What this verification cannot show, in one sentence ("" when nothing is left)."""
        if self.receipts_checked:
            if self.tail_witnessed:
                return ""
            return (
                "records cut off the end together with their receipts (that needs the server's "
                "last receipt for this device)"
            )
        if self.witnessed:
            return (
                "a rewrite after the witnessed record by someone holding this device's keys "
                "(check the server's receipts with --receipts)"
            )
        return (
            "records cut off the end of the log and its checkpoints together, or a log "
            "rewritten and re-signed by someone holding this device's keys (a witness shows "
            "both: the server's receipts, --receipts, or an exported checkpoint)"
        )

    @property
    def first_bad(self) -> VerifyProblem | None:
        """The first bad record, or None for a clean log."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line for people: "ok: ..." or the first bad record and why."""
        if self.ok:
            tail = (
                f", {self.unchecked_tail} after the newest checkpoint"
                if self.unchecked_tail
                else ""
            )
            how = "HMAC chain" if self.hmac_checked else "digest chain (no audit key)"
            vouched = ""
            if self.receipts_checked:
                pin = (
                    "" if self.receipt_key_pinned else ": compare it with the id the server printed"
                )
                vouched = (
                    f", all {self.receipts_checked} match the server's receipts "
                    f"(server key {self.receipt_key_id}{pin})"
                )
            limit = f"; cannot show {self.cannot_show}" if self.cannot_show else ""
            return (
                f"ok: {self.records} records, {self.checkpoints} signed checkpoints, "
                f"{how} intact{tail}{vouched}{limit}"
            )
        bad = self.problems[0]
        more = f" (+{len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"FAILED at {bad.where}: {bad.reason}{more}"


@dataclass
class _Walk:
    """What walking the records found: problems, and the chain head after each good record."""

    lines: int = 0
    last: int = 0  # the last good record's seq
    problems: list[VerifyProblem] = field(default_factory=list)
    heads: dict[int, tuple[str, str]] = field(default_factory=dict)  # seq -> (hmac, digest)


def _parse(line: bytes, lineno: int, expected: int) -> dict[str, Any] | VerifyProblem:
    try:
        rec = json.loads(line)
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        return VerifyProblem(expected, f"line {lineno} is not a JSON record")
    seq = rec.get("seq")
    if seq == expected:
        return rec
    if isinstance(seq, int) and seq > expected:
        why = f"record {expected} is missing (line {lineno} holds record {seq})"
    else:
        why = (
            f"line {lineno} holds record {seq!r} where record {expected} belongs "
            "(reordered or duplicated)"
        )
    return VerifyProblem(expected, why)


def _payload_intact(rec: Mapping[str, Any]) -> bool:
    payload = rec.get("payload")
    if rec.get("storage") != "plain" or not isinstance(payload, str):
        return True  # a sealed copy or a digest only: nothing to hash here
    data = payload.encode("utf-8")
    return hashlib.sha256(data).hexdigest() == rec.get("sha256") and len(data) == rec.get("size")


def _link(rec: Mapping[str, Any], prev_hmac: str, audit_key: bytes | None) -> str | VerifyProblem:
    """The record's HMAC once its linkage (and, with the key, its HMAC) checks out."""
    seq = int(rec["seq"])
    if rec.get("prev") != prev_hmac:
        return VerifyProblem(
            seq,
            "chain broken: 'prev' does not match the previous record's HMAC (a record was "
            "inserted, removed or replaced)",
        )
    if audit_key is None:
        return str(rec.get("hmac"))
    mine = chain_hmac(audit_key, prev_hmac, canonical(body(rec)))
    if not hmac.compare_digest(str(rec.get("hmac")), mine):
        return VerifyProblem(seq, "HMAC mismatch: the record was altered")
    return mine


def _walk(lines: list[bytes], audit_key: bytes | None) -> _Walk:
    """Check each record in turn; stop at the first bad one (later ones are unverifiable)."""
    walk = _Walk(lines=len(lines))
    prev_hmac = prev_digest = GENESIS
    for lineno, line in enumerate(lines, 1):
        rec = _parse(line, lineno, walk.last + 1)
        if isinstance(rec, VerifyProblem):
            walk.problems.append(rec)
            break
        linked = _link(rec, prev_hmac, audit_key)
        if isinstance(linked, VerifyProblem):
            walk.problems.append(linked)
            break
        if not _payload_intact(rec):
            walk.problems.append(
                VerifyProblem(rec["seq"], "payload does not match its sha256/size")
            )
            break
        prev_hmac, prev_digest = linked, chain_digest(prev_digest, canonical(body(rec)))
        walk.last = rec["seq"]
        walk.heads[walk.last] = (prev_hmac, prev_digest)
    return walk


def _checkpoints(
    cp_path: Path, witness: Witness | None, after: int
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[VerifyProblem]]:
    """The side file's checkpoints and the witness's, labelled; unreadable lines as problems."""
    cps: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[VerifyProblem] = []
    lines, torn = read_lines_torn(cp_path)
    for lineno, line in enumerate(lines, 1):
        label = f"checkpoint line {lineno}"
        try:
            cp = json.loads(line)
        except ValueError:
            cp = None
        if isinstance(cp, dict):
            cps.append((label, cp))
        elif torn and lineno == len(lines):
            problems.append(VerifyProblem(after, _torn(cp_path), label))
        else:
            problems.append(
                VerifyProblem(after, "not a JSON checkpoint (edited or damaged)", label)
            )
    if witness is not None:
        items = [witness] if isinstance(witness, Mapping) else list(witness)
        cps.extend((f"witness checkpoint {i + 1}", w) for i, w in enumerate(items))
    return cps, problems


def _torn(cp_path: Path) -> str:
    return (
        "torn: its write was cut short (a crash or a full disk), so it holds no signature; the "
        f"next session that writes this log moves it aside to {cp_path.name}.torn"
    )


def _signed_seq(pub: Ed25519PublicKey, cp: Mapping[str, Any]) -> int | None:
    try:
        seq = int(cp["seq"])
        pub.verify(base64.b64decode(cp["sig"]), checkpoint_message(cp))
    except (KeyError, ValueError, TypeError, InvalidSignature):
        return None
    return seq


def _check_checkpoint(
    label: str, cp: Mapping[str, Any], seq: int, walk: _Walk, audit_key: bytes | None
) -> VerifyProblem | None:
    """A validly signed checkpoint against the recomputed chain heads."""
    last = walk.last
    if seq > last:
        if walk.problems:
            return None  # records past a break are unverifiable, not missing; already reported
        return VerifyProblem(
            last + 1,
            f"{label} is signed for record {seq} but the log ends at record {last}: the tail "
            f"was cut (records {last + 1}..{seq} are missing)",
        )
    head = walk.heads.get(seq)
    if head is None:
        return None  # before a record-level problem; already reported
    mine = head[1] if audit_key is None else head[0]
    theirs = cp.get("digest") if audit_key is None else cp.get("hmac")
    if mine != theirs or (audit_key is None and head[0] != cp.get("hmac")):
        return VerifyProblem(
            seq, f"{label}: record {seq} (or one before it) does not match the signed chain head"
        )
    return None


def verify_log(
    path: str | Path,
    *,
    audit_key: bytes | None = None,
    public_key: Ed25519PublicKey | bytes | str | None = None,
    checkpoints_path: str | Path | None = None,
    witness: Witness | None = None,
) -> VerifyReport:
    """Verify an audit log and name its first bad record.

    Args:
        path: The JSONL log.
        audit_key: The HMAC key; without it HMACs are not checked (an outside auditor).
        public_key: The checkpoint-signing key (object or PEM); without it checkpoints are not
            checked.
        checkpoints_path: The signed checkpoints; default ``<log>.checkpoints`` next to it.
        witness: Checkpoints kept elsewhere (from :meth:`AuditLog.export_checkpoint`).

    Returns:
        A :class:`VerifyReport`; ``ok`` is false when anything was altered, inserted, removed,
        reordered, or cut from the tail.
    """
    path = Path(path)
    walk = _walk(read_lines(path), audit_key)
    cp_path = (
        Path(checkpoints_path) if checkpoints_path else path.with_name(f"{path.name}.checkpoints")
    )
    cps, problems = _checkpoints(cp_path, witness, walk.last + 1)
    problems = walk.problems + problems
    newest = 0
    if public_key is not None:
        pub = load_public_key(public_key)
        for label, cp in cps:
            seq = _signed_seq(pub, cp)
            if seq is None:
                problems.append(
                    VerifyProblem(walk.last + 1, "signature invalid or fields missing", label)
                )
                continue
            newest = max(newest, seq)
            problem = _check_checkpoint(label, cp, seq, walk, audit_key)
            if problem is not None:
                problems.append(problem)
    problems.sort(key=lambda p: p.seq)
    return VerifyReport(
        ok=not problems,
        records=walk.lines,
        checkpoints=len(cps) if public_key is not None else 0,
        hmac_checked=audit_key is not None,
        problems=tuple(problems),
        unchecked_tail=max(0, walk.last - newest) if public_key is not None else walk.last,
        witnessed=witness is not None,
    )
