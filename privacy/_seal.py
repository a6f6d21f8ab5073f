"""Authenticated encryption of small values (AES-256-GCM), used for every stored private text.

A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The nonce is random per
call; with 96-bit random nonces one key may seal about 2**32 values before the collision risk
matters, far beyond one user's memory store. The associated data (``aad``) binds a blob to its
place (say, ``b"user:alice|doc:42|text"``), so a blob moved to another record does not open.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from specsteer._errors import InvalidInputError
from specsteer.privacy._exceptions import DecryptionError

__all__ = ["KEY_BYTES", "NONCE_BYTES", "open_sealed", "open_sealed_any", "seal"]

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise InvalidInputError(
            f"key must be {KEY_BYTES} bytes (an AES-256 key such as Keyring.data_key returns)"
        )


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``.

    Args:
        key: A 32-byte AES-256 key, e.g. from :meth:`Keyring.data_key`.
        plaintext: The bytes to protect.
        aad: Associated data, authenticated but not encrypted; pass the same to open.

    Returns:
        ``nonce || ciphertext || tag``.

    Raises:
        InvalidInputError: The key is not 32 bytes.
    """
    _check_key(key)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(bytes(key)).encrypt(nonce, bytes(plaintext), bytes(aad))


def open_sealed(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Decrypt a blob made by :func:`seal`.

    Args:
        key: The 32-byte key it was sealed with.
        blob: ``nonce || ciphertext || tag``.
        aad: The associated data given to :func:`seal`.

    Returns:
        The plaintext.

    Raises:
        InvalidInputError: The key is not 32 bytes.
        DecryptionError: Wrong key, wrong aad, truncated or altered blob.
    """
    _check_key(key)
    if len(blob) < NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError(
            "sealed blob is too short to be AES-GCM output; it was truncated or is not a sealed value"
        )
    try:
        return AESGCM(bytes(key)).decrypt(
            bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), bytes(aad)
        )
    except InvalidTag as e:
        raise DecryptionError(
            "sealed blob does not open: wrong key (rotated or another user's?), different "
            "associated data, or the stored bytes were altered"
        ) from e


def open_sealed_any(keys: Sequence[bytes], blob: bytes, aad: bytes = b"") -> bytes:
    """Open a blob with the first of ``keys`` that works (newest first after a rotation).

    Args:
        keys: Candidate keys, e.g. :meth:`Keyring.data_keys`.
        blob: ``nonce || ciphertext || tag``.
        aad: The associated data given to :func:`seal`.

    Returns:
        The plaintext.

    Raises:
        DecryptionError: No key opens the blob.
    """
    last: DecryptionError | None = None
    for key in keys:
        try:
            return open_sealed(key, blob, aad)
        except DecryptionError as e:
            last = e
    raise DecryptionError(
        f"sealed blob does not open with any of the {len(keys)} key version(s) given"
    ) from last
