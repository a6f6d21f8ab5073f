"""Errors raised by the privacy layer, placed in the package-wide hierarchy.

Key and ciphertext failures are run-time failures of stored data, so they derive from
:class:`~specsteer.MemoryStoreError` (the memory store is their main caller and already handles
that branch). A payload stopped at the egress guard is a :class:`~specsteer.PrivacyViolation`.
"""

from __future__ import annotations

from specsteer._errors import MemoryStoreError, PrivacyViolation

__all__ = [
    "AuditLogError",
    "DecryptionError",
    "DisallowedPayloadError",
    "KeyDestroyedError",
    "KeyNotFoundError",
    "KeyringCorruptedError",
    "KeyringError",
    "WrongPassphraseError",
]


class KeyringError(MemoryStoreError):
    """Base of keyring failures."""


class KeyDestroyedError(KeyringError):
    """The user's data key was destroyed (the user was forgotten); their data cannot be opened."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"user {user_id!r} was forgotten: their data key was destroyed and the data encrypted "
            "with it can no longer be read. To store new data for this id, call "
            "Keyring.forget_tombstone(user_id) or data_key(user_id, recreate=True)."
        )
        self.user_id = user_id


class KeyNotFoundError(KeyringError):
    """No data key exists for the user and the caller asked not to create one."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"no data key for user {user_id!r}; call data_key(user_id) with create=True to make one"
        )
        self.user_id = user_id


class KeyringCorruptedError(KeyringError):
    """A key file is unreadable (garbled, truncated, or edited)."""


class WrongPassphraseError(KeyringError):
    """The passphrase is wrong, missing, or given for a keyring created without one."""


class DecryptionError(MemoryStoreError):
    """A sealed blob does not open: wrong key, wrong associated data, or the bytes were altered."""


class DisallowedPayloadError(PrivacyViolation, TypeError):
    """The egress guard was handed something that is not one of the allowed protocol types."""


class AuditLogError(PrivacyViolation):
    """The audit record could not be written, so the payload was not sent."""
