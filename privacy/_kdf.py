"""Passphrase to key: scrypt with bounded, stored parameters.

The parameters live in the key files beside the salt, so they can be raised later; read back,
they are bounded before anything is derived, because a tampered or damaged file could otherwise
crash the open (``n=3`` is not a power of two) or ask for a 128 GiB derivation (``n=2**24,
r=64``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["ScryptParams", "derive"]

#: scrypt cost for new keys: N=2**15, r=8 needs 32 MiB and ~0.1 s.
_N, _R, _P = 2**15, 8, 1
#: The most a stored parameter set may ask for: 1 GiB of memory (128 * n * r * p bytes).
MAX_MEMORY = 1 << 30
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16


@dataclass(frozen=True)
class ScryptParams:
    """One scrypt parameter set and its salt."""

    salt: bytes
    n: int = _N
    r: int = _R
    p: int = _P

    @classmethod
    def new(cls) -> ScryptParams:
        """Fresh salt, the default cost."""
        return cls(os.urandom(16))

    @classmethod
    def read(cls, salt: bytes, doc: Mapping[str, Any]) -> ScryptParams:
        """Parameters read from a file, bounded.

        Raises:
            ValueError: A parameter is missing, of the wrong type or out of bounds (the caller
                reports the file as corrupted).
        """
        n, r, p = (doc[k] for k in ("n", "r", "p"))
        if not all(type(v) is int for v in (n, r, p)):
            raise ValueError("scrypt n, r and p must be integers")
        if not 2 <= n <= _MAX_N or n & (n - 1):
            raise ValueError(f"scrypt n must be a power of two from 2 to 2**20, not {n}")
        if not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
            raise ValueError(f"scrypt r must be 1..{_MAX_R} and p 1..{_MAX_P}")
        if 128 * n * r * p > MAX_MEMORY:
            raise ValueError("scrypt parameters ask for more than 1 GiB of memory")
        if not 16 <= len(salt) <= 64:
            raise ValueError("scrypt salt must be 16 to 64 bytes")
        return cls(salt, n, r, p)

    def as_dict(self) -> dict[str, int]:
        """``n``, ``r``, ``p`` for the file (the salt is stored by the caller)."""
        return {"n": self.n, "r": self.r, "p": self.p}


def derive(passphrase: str, params: ScryptParams, length: int = 32) -> bytes:
    """The key-encryption key for ``passphrase`` under ``params``."""
    kdf = Scrypt(salt=params.salt, length=length, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))
