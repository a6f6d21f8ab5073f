"""The privacy layer: keys, detectors, the egress guard and the audit log (DESIGN section 6)."""

from specsteer.privacy._exceptions import (
    AuditLogError,
    DecryptionError,
    DisallowedPayloadError,
    KeyDestroyedError,
    KeyNotFoundError,
    KeyringCorruptedError,
    KeyringError,
    WrongPassphraseError,
)
from specsteer.privacy._keyring import Keyring, validate_user_id
from specsteer.privacy._seal import open_sealed, open_sealed_any, seal

__all__ = [
    "AuditLogError",
    "DecryptionError",
    "DisallowedPayloadError",
    "KeyDestroyedError",
    "KeyNotFoundError",
    "Keyring",
    "KeyringCorruptedError",
    "KeyringError",
    "WrongPassphraseError",
    "open_sealed",
    "open_sealed_any",
    "seal",
    "validate_user_id",
]
