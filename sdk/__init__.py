"""specsteer: private, personalized generation with SpecSteer (Draft-Verify-Recover)."""

from specsteer._errors import (
    CloudError,
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
    MissingDependencyError,
    ModelLoadError,
    PrivacyViolation,
    ProtocolError,
    RuntimeFailure,
    SpecSteerError,
    UsageError,
)

__all__ = [
    "CloudError",
    "ConfigurationError",
    "InvalidInputError",
    "MemoryStoreError",
    "MissingDependencyError",
    "ModelLoadError",
    "PrivacyViolation",
    "ProtocolError",
    "RuntimeFailure",
    "SpecSteerError",
    "UsageError",
]
