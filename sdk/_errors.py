"""The exception hierarchy.

One base, two branches: the caller's mistakes (fix your input or config) and run-time failures
(something outside the caller's control went wrong). Every message says how to fix it.

This module imports nothing from the package, so every subpackage may raise these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "CloudError",
    "ConfigurationError",
    "DegenerateScoresError",
    "InvalidInputError",
    "MemoryStoreError",
    "MissingDependencyError",
    "ModelLoadError",
    "PrivacyViolation",
    "ProtocolError",
    "RuntimeFailure",
    "SpecSteerError",
    "UsageError",
    "summarize_validation",
]


class SpecSteerError(Exception):
    """Base of every error raised by specsteer."""


class UsageError(SpecSteerError):
    """The caller's mistake: bad configuration or bad input. Fix the call, then retry."""


class ConfigurationError(UsageError):
    """A setting is invalid, missing, or inconsistent with another."""


class InvalidInputError(UsageError, ValueError):
    """An argument (text, user id, token ids, ...) is invalid."""


class DegenerateScoresError(InvalidInputError):
    """Scores leave nothing to choose: NaN, or every candidate ruled out (``-inf``).

    Raised by the fusion math instead of letting a NaN pick a token; the message names the
    setting that emptied the distribution.
    """


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        hint = f"pip install 'specsteer[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"the optional package {package!r} is not installed{what}; run: {hint}")
        self.package = package


class RuntimeFailure(SpecSteerError):
    """Base of run-time failures: the call was valid but something outside it failed."""


class ModelLoadError(RuntimeFailure):
    """A model or tokenizer could not be loaded from the given local path."""


class CloudError(RuntimeFailure):
    """The cloud verifier could not be reached or answered badly."""


class ProtocolError(CloudError):
    """A message on the wire is malformed, out of range, or of the wrong version."""


class MemoryStoreError(RuntimeFailure):
    """The local memory store failed (disk, index, or decryption)."""


class PrivacyViolation(RuntimeFailure):
    """A payload would have carried private data out of the device and was stopped."""


def summarize_validation(error: ValidationError, limit: int | None = 3, whole: str = "body") -> str:
    """Field locations and messages of a pydantic error (``whole`` when the error is about
    the value as a whole), never the offending input values; at most ``limit`` of them."""
    items = error.errors()
    parts = []
    for item in items[:limit]:
        loc = ".".join(str(x) for x in item.get("loc", ())) or whole
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}")
    more = len(items) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
