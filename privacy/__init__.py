"""The privacy layer: keys, detectors, the egress guard and the audit log (DESIGN section 6).

Everything that leaves the device passes :class:`EgressGuard`; every payload it lets out is
recorded first in the :class:`AuditLog`; the memory store seals private text with keys from the
:class:`Keyring`.
"""

from specsteer.privacy._audit import AuditLog, AuditRecord, PayloadStorage
from specsteer.privacy._audit_cli import audit_export, audit_show, audit_verify
from specsteer.privacy._audit_verify import VerifyProblem, VerifyReport, verify_log
from specsteer.privacy._detectors import (
    Detector,
    NameDetector,
    Pattern,
    PatternDetector,
    Span,
    default_detectors,
    detect,
    iban_checksum_ok,
    luhn_ok,
)
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
from specsteer.privacy._guard import Admitted, EgressGuard, Finding, ScreenResult
from specsteer.privacy._keyring import Keyring, validate_user_id
from specsteer.privacy._lift import ContextLift, LiftReport
from specsteer.privacy._overlap import OverlapIndex, tokenize
from specsteer.privacy._policy import DEFAULT_ACTIONS, Action, EgressPolicy
from specsteer.privacy._pseudonymize import Pseudonymizer
from specsteer.privacy._report import PrivacyReport
from specsteer.privacy._seal import open_sealed, open_sealed_any, seal

__all__ = [
    "DEFAULT_ACTIONS",
    "Action",
    "Admitted",
    "AuditLog",
    "AuditLogError",
    "AuditRecord",
    "ContextLift",
    "DecryptionError",
    "Detector",
    "DisallowedPayloadError",
    "EgressGuard",
    "EgressPolicy",
    "Finding",
    "KeyDestroyedError",
    "KeyNotFoundError",
    "Keyring",
    "KeyringCorruptedError",
    "KeyringError",
    "LiftReport",
    "NameDetector",
    "OverlapIndex",
    "Pattern",
    "PatternDetector",
    "PayloadStorage",
    "PrivacyReport",
    "Pseudonymizer",
    "ScreenResult",
    "Span",
    "VerifyProblem",
    "VerifyReport",
    "WrongPassphraseError",
    "audit_export",
    "audit_show",
    "audit_verify",
    "default_detectors",
    "detect",
    "iban_checksum_ok",
    "luhn_ok",
    "open_sealed",
    "open_sealed_any",
    "seal",
    "tokenize",
    "validate_user_id",
    "verify_log",
]
