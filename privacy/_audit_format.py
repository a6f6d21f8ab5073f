"""The audit log's on-disk format: canonical record bytes, the two chains, checkpoint messages.

Shared by the writer (:mod:`._audit`) and the verifier (:mod:`._audit_verify`), so both compute
the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from specsteer._errors import InvalidInputError

__all__ = [
    "FORMAT",
    "GENESIS",
    "body",
    "canonical",
    "chain_digest",
    "chain_hmac",
    "checkpoint_message",
    "load_public_key",
    "read_lines",
    "read_lines_torn",
]

GENESIS = "0" * 64
FORMAT = 1


def canonical(obj: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the chains and signatures cover."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without its chain values (``digest``, ``hmac``)."""
    return {k: v for k, v in record.items() if k not in ("digest", "hmac")}


def chain_hmac(key: bytes, prev: str, canon: bytes) -> str:
    """``HMAC-SHA256(key, prev || canon)`` as hex."""
    return hmac.new(key, bytes.fromhex(prev) + canon, hashlib.sha256).hexdigest()


def chain_digest(prev: str, canon: bytes) -> str:
    """``SHA-256(prev || canon)`` as hex."""
    return hashlib.sha256(bytes.fromhex(prev) + canon).hexdigest()


def checkpoint_message(cp: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical({k: cp[k] for k in ("v", "seq", "hmac", "digest", "time")})


def read_lines(path: Path) -> list[bytes]:
    """The file's lines without their newlines; none for a missing file."""
    return read_lines_torn(path)[0]


def read_lines_torn(path: Path) -> tuple[list[bytes], bool]:
    """The file's lines without their newlines, and whether the last one is torn (it has no
    newline: its write was cut short by a crash or a full disk); none for a missing file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], False
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        return lines, False
    return lines, bool(data)


def load_public_key(public_key: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from the object itself or its PEM form.

    Raises:
        InvalidInputError: Not an Ed25519 public key in PEM form.
    """
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    raw = public_key.encode("ascii") if isinstance(public_key, str) else public_key
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as e:
        raise InvalidInputError("public_key must be an Ed25519 public key in PEM form") from e
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError("public_key must be an Ed25519 public key in PEM form")
    return key
