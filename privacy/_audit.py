"""The audit log: one tamper-evident JSONL record per outbound payload, written before the send.

Each line is a JSON object::

    {"v": 1, "seq": 7, "time": 1767225600.123456, "destination": "...", "payload_type": "...",
     "size": 512, "sha256": "...", "storage": "plain", "payload": "{...}",
     "detectors": {"EMAIL_ADDRESS": 1}, "policy": {...},
     "prev": "<hmac of record 6>", "digest": "...", "hmac": "..."}

Two chains run through the records, both over the record's canonical JSON ``c_i`` (sorted keys,
no spaces, without ``digest`` and ``hmac``):

* ``hmac_i = HMAC-SHA256(audit_key, hmac_{i-1} || c_i)`` — checkable by the key holder;
  anyone without the key who edits, inserts, deletes or reorders records breaks it.
* ``digest_i = SHA-256(digest_{i-1} || c_i)`` — recomputable by anyone.

A chain alone cannot show that its newest records were cut off. So after every
``checkpoint_every`` records the log signs ``(seq, hmac, digest)`` of the head with the device's
Ed25519 key and appends it to a side file; :meth:`AuditLog.export_checkpoint` hands the latest to
an outside witness (another machine, a ticket, a printout). :func:`verify_log` checks the chains,
then every checkpoint and witness against the records: a checkpoint beyond the end of the log
means the tail was cut. An auditor with only the public key can check linkage, payload hashes,
the digest chain and the signatures; the key holder can also check every HMAC.

Durability: each record is written, flushed and fsynced before :meth:`AuditLog.append` returns,
and the egress guard only transmits after that, so a crash can never hide a send (at worst the
log shows a payload that never left).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from specsteer._errors import InvalidInputError
from specsteer._home import private_dir, specsteer_home
from specsteer.privacy._audit_format import (
    FORMAT,
    GENESIS,
    canonical,
    chain_digest,
    chain_hmac,
    checkpoint_message,
    read_lines,
)
from specsteer.privacy._audit_verify import VerifyReport, verify_log
from specsteer.privacy._exceptions import AuditLogError
from specsteer.privacy._keyring import SIGNING_PASSPHRASE_ENV, Keyring
from specsteer.privacy._receipts import read_receipts, receipt_link, with_receipts
from specsteer.privacy._seal import open_sealed, seal

__all__ = ["AuditLog", "AuditRecord", "PayloadStorage"]

logger = logging.getLogger(__name__)

PayloadStorage = Literal["plain", "sealed", "digest"]


@dataclass(frozen=True)
class AuditRecord:
    """What :meth:`AuditLog.append` wrote: the record's sequence number and chain head."""

    seq: int
    hmac: str
    digest: str
    sha256: str


class AuditLog:
    """Append-only, chained, checkpointed log of outbound payloads.

    Thread-safe (a lock) and safe across processes on one machine (``flock``): each append
    re-reads the chain head from the file, so a reopened log, or two processes sharing one,
    continue the same chain.

    Args:
        path: The log file; default ``specsteer_home() / "audit" / "audit.jsonl"``.
        keyring: Supplies the HMAC, signing and sealing keys; default :class:`Keyring`.
        payload_storage: ``"plain"`` stores the payload text (default: it is public data by
            construction, and auditors want to read it); ``"sealed"`` an AES-GCM copy only the
            keyring can open; ``"digest"`` only its size and sha256.
        checkpoint_every: Sign the chain head after this many records (1: after each).
        signing_passphrase: The signing key's own passphrase, when it is sealed under one
            (:meth:`Keyring.protect_signing_key`); default ``$SPECSTEER_SIGNING_PASSPHRASE``.
        read_only: Open only to read, verify and export: the signing key stays sealed (its
            public key verifies, so no passphrase is needed), the log and its checkpoints are
            left as they are (no folder made, no torn line moved), and :meth:`append` and
            :meth:`checkpoint` raise :class:`AuditLogError`.

    Opened to write, the log first moves a torn last line of the log or of its checkpoints (a
    write cut short by a crash or a full disk) aside to ``<file>.torn``, keeping every complete
    line.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        keyring: Keyring | None = None,
        payload_storage: PayloadStorage = "plain",
        checkpoint_every: int = 1,
        signing_passphrase: str | None = None,
        read_only: bool = False,
    ) -> None:
        if payload_storage not in ("plain", "sealed", "digest"):
            raise InvalidInputError("payload_storage must be 'plain', 'sealed' or 'digest'")
        if checkpoint_every < 1:
            raise InvalidInputError("checkpoint_every must be >= 1")
        self._path = Path(path) if path is not None else self.default_path()
        if read_only:
            pass  # a reader neither makes the folder nor tightens it
        elif path is None:
            private_dir(self._path.parent)  # ours: tightened even if made looser before
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keyring = keyring if keyring is not None else Keyring()
        self._key = self._keyring.audit_key()
        if signing_passphrase is None:
            signing_passphrase = os.environ.get(SIGNING_PASSPHRASE_ENV) or None
        # A reader verifies with the public key alone, so a sealed signing key stays sealed.
        self._passphrase = signing_passphrase if read_only else None
        self._signer = None if read_only else self._keyring.signing_key(signing_passphrase)
        self._public = None if self._signer is None else self._signer.public_key()
        self._storage: PayloadStorage = payload_storage
        self._every = checkpoint_every
        self._lock = threading.Lock()
        self._link: str | None = None  # the last stored receipt's digest, read on first use
        if not read_only:
            self._repair()

    @staticmethod
    def default_path() -> Path:
        """``specsteer_home() / "audit" / "audit.jsonl"``."""
        return specsteer_home() / "audit" / "audit.jsonl"

    @property
    def path(self) -> Path:
        """The JSONL log."""
        return self._path

    @property
    def checkpoints_path(self) -> Path:
        """The signed checkpoints side file."""
        return self._path.with_name(self._path.name + ".checkpoints")

    # -- writing -------------------------------------------------------------------------------

    def _locked_file(self) -> int:
        fd = os.open(self._path.with_name(self._path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _repair(self) -> None:
        """Move torn last lines of the log and its checkpoints aside (under both locks)."""
        try:
            with self._lock:
                lock_fd = self._locked_file()
                try:
                    _move_torn_tail(self._path, "record")
                    _move_torn_tail(self.checkpoints_path, "checkpoint")
                finally:
                    os.close(lock_fd)
        except OSError as e:
            raise AuditLogError(
                f"could not repair the audit log {self._path} ({type(e).__name__}: {e}); check "
                "disk space and permissions of the audit folder"
            ) from e

    def _head(self) -> tuple[int, str, str]:
        """(seq, hmac, digest) of the last complete record; moves a torn last line aside."""
        # A record torn by a crash mid-write was never fsynced, so nothing was sent.
        buf = _move_torn_tail(self._path, "record")
        if not buf:
            return 0, GENESIS, GENESIS
        last = buf[:-1].rsplit(b"\n", 1)[-1]
        try:
            rec = json.loads(last)
            return int(rec["seq"]), str(rec["hmac"]), str(rec["digest"])
        except (ValueError, KeyError, TypeError) as e:
            raise AuditLogError(
                f"the last record of {self._path} is unreadable, so the chain cannot continue; "
                "run `specsteer audit verify` and move the damaged log aside"
            ) from e

    def append(
        self,
        *,
        destination: str,
        payload: bytes,
        payload_type: str,
        detectors: Mapping[str, int] | None = None,
        policy: Mapping[str, Any] | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Write one record for ``payload`` and fsync it; return once it is on disk.

        ``note`` (optional, JSON values) says more about the payload, e.g. the context lift its
        draft carries; it is chained and signed with the rest of the record.

        Raises:
            AuditLogError: The record could not be written (the caller must not send).
        """
        self._signing_key()  # a read-only log refuses before writing anything
        fields = {
            "destination": destination,
            "payload_type": payload_type,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "storage": self._storage,
            "detectors": dict(sorted((detectors or {}).items())),
            "policy": dict(policy or {}),
            **({"note": dict(note)} if note else {}),
        }
        try:
            with self._lock:
                lock_fd = self._locked_file()
                try:
                    record = self._append_locked(fields, payload)
                finally:
                    os.close(lock_fd)  # releases the flock
        except AuditLogError:
            raise
        except (OSError, UnicodeDecodeError) as e:
            raise AuditLogError(
                f"could not write the audit record to {self._path} ({type(e).__name__}); nothing "
                "was sent. Check disk space and permissions of the audit folder"
            ) from e
        return AuditRecord(record["seq"], record["hmac"], record["digest"], record["sha256"])

    def _append_locked(self, fields: Mapping[str, Any], payload: bytes) -> dict[str, Any]:
        """Chain, write and fsync one record (the caller holds both locks); checkpoint it."""
        seq, prev_hmac, prev_digest = self._head()
        seq += 1
        record: dict[str, Any] = {
            "v": FORMAT,
            "seq": seq,
            "time": round(time.time(), 6),
            **fields,
            "prev": prev_hmac,
        }
        if self._storage == "plain":
            record["payload"] = payload.decode("utf-8")
        elif self._storage == "sealed":
            blob = seal(self._keyring.audit_seal_key(), payload, f"audit:{seq}".encode())
            record["payload_sealed"] = base64.b64encode(blob).decode("ascii")
        canon = canonical(record)
        record["digest"] = chain_digest(prev_digest, canon)
        record["hmac"] = chain_hmac(self._key, prev_hmac, canon)
        # ASCII lines: no U+0085 or U+2028 inside a record, so any line tool splits records right.
        line = json.dumps(record, sort_keys=True).encode() + b"\n"
        _append_line(self._path, line)
        if seq % self._every == 0:
            self._write_checkpoint(seq, record["hmac"], record["digest"])
        return record

    def _write_checkpoint(self, seq: int, head_hmac: str, head_digest: str) -> dict[str, Any]:
        cp: dict[str, Any] = {
            "v": FORMAT,
            "seq": seq,
            "hmac": head_hmac,
            "digest": head_digest,
            "time": round(time.time(), 6),
        }
        sig = self._signing_key().sign(checkpoint_message(cp))
        cp["sig"] = base64.b64encode(sig).decode("ascii")
        # A torn last checkpoint (a full disk) goes aside, or this one would extend its line.
        _move_torn_tail(self.checkpoints_path, "checkpoint")
        _append_line(self.checkpoints_path, json.dumps(cp, sort_keys=True).encode() + b"\n")
        return cp

    def _public_key(self) -> Ed25519PublicKey:
        """The key that verifies the checkpoints (read on first use by a reader)."""
        if self._public is None:
            self._public = self._keyring.signing_public_key(self._passphrase)
        return self._public

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._signer is None:
            raise AuditLogError(
                f"the audit log {self._path} was opened read_only, so nothing was written; open "
                "it without read_only=True to write"
            )
        return self._signer

    def checkpoint(self) -> dict[str, Any]:
        """Sign the current chain head now and return the checkpoint (see :meth:`export_checkpoint`)."""
        self._signing_key()
        with self._lock:
            lock_fd = self._locked_file()
            try:
                seq, head_hmac, head_digest = self._head()
                return self._write_checkpoint(seq, head_hmac, head_digest)
            finally:
                os.close(lock_fd)

    def export_checkpoint(self) -> dict[str, Any]:
        """Return a signed checkpoint of the current head for an outside witness.

        Keep it somewhere the device cannot rewrite; pass it to :meth:`verify` (``witness=``)
        later. Together with :meth:`public_key_pem` it proves the log had at least ``seq``
        records with that head.
        """
        return self.checkpoint()

    def public_key_pem(self) -> str:
        """The Ed25519 public key that verifies this log's checkpoints."""
        pem = self._public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")

    # -- reading -------------------------------------------------------------------------------

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield each record (unverified; call :meth:`verify` to check them).

        Raises:
            InvalidInputError: A line is not a JSON record (the file is not an audit log, or
                is damaged: :meth:`verify` names the first bad record).
        """
        for lineno, line in enumerate(read_lines(self._path), 1):
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if not isinstance(rec, dict):
                raise InvalidInputError(
                    f"line {lineno} of {self._path} is not a JSON audit record; check that this "
                    "is an audit log, and run `specsteer audit verify` to find the damage"
                )
            yield rec

    def read_payload(self, record: Mapping[str, Any]) -> bytes | None:
        """The payload bytes of a record (opening a sealed copy); None for ``digest`` storage."""
        if "payload" in record:
            return str(record["payload"]).encode("utf-8")
        if "payload_sealed" in record:
            blob = base64.b64decode(record["payload_sealed"])
            return open_sealed(
                self._keyring.audit_seal_key(), blob, f"audit:{record['seq']}".encode()
            )
        return None

    def verify(
        self,
        witness: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        *,
        receipts: bool = False,
        server_key_id: str | None = None,
        last_receipt: Mapping[str, Any] | None = None,
    ) -> VerifyReport:
        """Verify this log with the local keys (HMACs, checkpoints, and any witness).

        Args:
            witness: Checkpoints kept off the device.
            receipts: Also check every record against the server's receipt for it.
            server_key_id: The server key id receipts must be signed with.
            last_receipt: The server's last receipt for this device (catches a cut tail).
        """
        with self._lock:
            report = verify_log(
                self._path,
                audit_key=self._key,
                public_key=self._public_key(),
                checkpoints_path=self.checkpoints_path,
                witness=witness,
            )
        if receipts or last_receipt is not None:
            report = with_receipts(
                report, self._path, server_key_id=server_key_id, last=last_receipt
            )
        return report

    # -- receipts ------------------------------------------------------------------------------

    @property
    def receipts_path(self) -> Path:
        """The server receipts side file."""
        return self._path.with_name(self._path.name + ".receipts")

    def receipt_link(self) -> str | None:
        """The link the next request carries (``receipt_prev``): the digest of the last receipt
        stored, or None before the first one."""
        with self._lock:
            if self._link is None:
                stored = read_receipts(self.receipts_path)
                self._link = receipt_link(stored[max(stored)]) if stored else ""
            return self._link or None

    def attach_receipt(self, seq: int, receipt: Mapping[str, Any]) -> None:
        """Store the server's receipt for record ``seq`` (appended, fsynced, 0600)."""
        line = json.dumps({"seq": seq, "receipt": dict(receipt)}, sort_keys=True) + "\n"
        with self._lock:
            lock_fd = self._locked_file()
            try:
                _write_private(self.receipts_path, line.encode(), append=True)
            finally:
                os.close(lock_fd)
            self._link = receipt_link(receipt)

    def export(self, dest: str | Path, *, decrypt: bool = False) -> Path:
        """Copy the log for an auditor into folder ``dest`` (0700; every file 0600).

        Writes ``audit.jsonl``, ``audit.jsonl.checkpoints``, ``audit.jsonl.receipts`` (the
        server's receipts, checkable without any device key), ``public_key.pem`` and
        ``verify.json`` (this device's verification); with ``decrypt`` also ``payloads.jsonl``
        (seq and payload text), for logs that store sealed copies.

        Returns:
            The folder.
        """
        out = private_dir(Path(dest))
        with self._lock:
            lock_fd = self._locked_file()
            try:
                copies = {
                    "audit.jsonl": _read_or_empty(self._path),
                    "audit.jsonl.checkpoints": _read_or_empty(self.checkpoints_path),
                    "audit.jsonl.receipts": _read_or_empty(self.receipts_path),
                }
            finally:
                os.close(lock_fd)
        for name, data in copies.items():
            _write_private(out / name, data)
        _write_private(out / "public_key.pem", self.public_key_pem().encode("ascii"))
        report = verify_log(out / "audit.jsonl", audit_key=self._key, public_key=self._public_key())
        summary = {
            "ok": report.ok,
            "records": report.records,
            "checkpoints": report.checkpoints,
            "summary": report.summary(),
            "problems": [
                {"seq": p.seq, "where": p.where, "reason": p.reason} for p in report.problems
            ],
        }
        _write_private(out / "verify.json", json.dumps(summary, indent=2).encode())
        if decrypt:
            lines = []
            for rec in self.records():
                body = self.read_payload(rec)
                text = body.decode("utf-8") if body is not None else None
                lines.append(json.dumps({"seq": rec["seq"], "payload": text}, ensure_ascii=False))
            _write_private(out / "payloads.jsonl", "".join(f"{x}\n" for x in lines).encode())
        return out


def _read_tail(f: BinaryIO) -> tuple[int, bytes]:
    """The file's end from the start of its last complete line (with any torn line after it),
    and the offset it starts at."""
    pos = f.seek(0, os.SEEK_END)
    buf = b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        if buf.count(b"\n") >= 2:
            break
    return pos, buf


def _move_torn_tail(path: Path, what: str) -> bytes:
    """Move a last line without its newline (a write cut short) to ``<path>.torn``, keeping
    every complete line before it. Returns the file's end from the start of its last complete
    line (empty when there is no file, or no complete line in it)."""
    try:
        f = open(path, "rb+")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return b""
    with f:
        pos, buf = _read_tail(f)
        cut = buf.rfind(b"\n") + 1
        if cut == len(buf):
            return buf
        _write_private(path.with_name(path.name + ".torn"), buf[cut:] + b"\n", append=True)
        f.truncate(pos + cut)
        os.fsync(f.fileno())
    logger.warning("audit log: moved a torn last %s aside (%d bytes)", what, len(buf) - cut)
    return buf[:cut]


def _append_line(path: Path, line: bytes) -> None:
    """Append ``line`` to a 0600 file and fsync it; a short write (a full disk) raises."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        _write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte: a short write is retried, so a full disk raises instead of leaving a
    torn line for the next write to extend."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _write_private(path: Path, data: bytes, *, append: bool = False) -> None:
    """Write (or append) ``data`` to a 0600 file, never through a symbolic link."""
    how = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | how | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
