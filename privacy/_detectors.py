"""PII detectors as validated data, in the shape of Presidio's ``PatternRecognizer``.

A detector is a list of :class:`Pattern` (name, regex, score) plus an optional validator that
checks a candidate (Luhn for card numbers, mod-97 for IBANs, range rules for SSNs). Detection is
separate from redaction: :func:`detect` returns :class:`Span` objects and changes nothing; the
egress guard and the pseudonymizer decide what to do with them.

Presidio's default engine needs a spaCy model download, which cannot happen offline; the field
names here match ``presidio_analyzer.Pattern`` so the same data can seed its recognizers where a
user has the model.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from specsteer._errors import InvalidInputError

__all__ = [
    "Detector",
    "NameDetector",
    "Pattern",
    "PatternDetector",
    "Span",
    "default_detectors",
    "detect",
    "iban_checksum_ok",
    "luhn_ok",
    "resolve_overlaps",
]


@dataclass(frozen=True)
class Span:
    """A detected span of text: ``text[start:end]`` is an ``entity`` with confidence ``score``."""

    start: int
    end: int
    entity: str
    score: float


@dataclass(frozen=True)
class Pattern:
    """One regular expression of a detector (Presidio's ``Pattern``).

    Attributes:
        name: A label for the pattern, e.g. ``"iban (grouped)"``.
        regex: The expression; compiled at construction so a bad one fails early.
        score: Confidence in ``[0, 1]`` for a match that passes validation.
    """

    name: str
    regex: str
    score: float
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise InvalidInputError(f"pattern {self.name!r}: score must be in [0, 1]")
        try:
            object.__setattr__(self, "compiled", re.compile(self.regex))
        except re.error as e:
            raise InvalidInputError(f"pattern {self.name!r}: invalid regex: {e}") from e


class Detector(ABC):
    """Base of detectors: one method, :meth:`analyze`."""

    #: The entity this detector reports (Presidio's names where one exists).
    entity: str

    @abstractmethod
    def analyze(self, text: str) -> list[Span]:
        """Return every span of ``text`` that is this detector's entity (may overlap)."""


class PatternDetector(Detector):
    """A detector made of :class:`Pattern` data and an optional validator.

    Args:
        entity: The entity name, e.g. ``"CREDIT_CARD"``.
        patterns: The patterns; group 0 of each match is the candidate.
        validator: Called with the candidate text; a false result drops the match.
    """

    def __init__(
        self,
        entity: str,
        patterns: Sequence[Pattern],
        validator: Callable[[str], bool] | None = None,
    ) -> None:
        if not entity or not patterns:
            raise InvalidInputError("a detector needs an entity name and at least one pattern")
        self.entity = entity
        self.patterns = tuple(patterns)
        self.validator = validator

    def analyze(self, text: str) -> list[Span]:
        """Return validated matches of every pattern."""
        spans: list[Span] = []
        for pattern in self.patterns:
            for m in pattern.compiled.finditer(text):
                if m.end() == m.start():
                    continue
                if self.validator is not None and not self.validator(m.group(0)):
                    continue
                spans.append(Span(m.start(), m.end(), self.entity, pattern.score))
        return spans

    def __repr__(self) -> str:
        return f"PatternDetector({self.entity!r}, {len(self.patterns)} patterns)"


class NameDetector(Detector):
    """Finds names the caller registered (case-insensitive, whole words), as ``PERSON``.

    Args:
        names: Names to find, e.g. the user's contacts.
        entity: The entity to report.
    """

    def __init__(self, names: Iterable[str] = (), entity: str = "PERSON") -> None:
        self.entity = entity
        self._names: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self.add(names)

    def add(self, names: Iterable[str]) -> None:
        """Register more names."""
        for name in names:
            cleaned = " ".join(name.split())
            if not cleaned:
                raise InvalidInputError("a registered name must contain a non-space character")
            self._names.add(cleaned)
        if self._names:
            # Longest first, so "Ada Lovelace" wins over "Ada"; whitespace inside a name may vary.
            alts = sorted(self._names, key=len, reverse=True)
            body = "|".join(r"\s+".join(map(re.escape, n.split())) for n in alts)
            self._regex = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)

    @property
    def names(self) -> frozenset[str]:
        """The registered names."""
        return frozenset(self._names)

    def analyze(self, text: str) -> list[Span]:
        """Return every occurrence of a registered name."""
        if self._regex is None:
            return []
        return [Span(m.start(), m.end(), self.entity, 1.0) for m in self._regex.finditer(text)]


# -- validators ---------------------------------------------------------------------------------


def luhn_ok(candidate: str) -> bool:
    """Luhn (mod 10) check on the digits of ``candidate``; 13-19 digits, not all the same."""
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ISO 13616 lengths for common countries; an unlisted country only needs 15-34 characters.
_IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27,
    "GB": 22, "GR": 27, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "SE": 24,
}  # fmt: skip


def iban_checksum_ok(candidate: str) -> bool:
    """ISO 13616 check: known country length and ``int(rearranged) % 97 == 1``."""
    iban = "".join(candidate.split()).upper()
    if not 15 <= len(iban) <= 34 or not iban.isalnum() or not iban[:2].isalpha():
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


_SSN_NEVER_ISSUED = {"078051120", "219099999", "123456789"}


def _ssn_ok(candidate: str) -> bool:
    """US SSN ranges: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = "".join(c for c in candidate if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area.startswith("9"):
        return False
    if group == "00" or serial == "0000":
        return False
    return digits not in _SSN_NEVER_ISSUED


def _nino_ok(candidate: str) -> bool:
    """UK National Insurance number: prefixes BG, GB, NK, KN, TN, NT, ZZ are never issued."""
    return candidate.replace(" ", "")[:2].upper() not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def _phone_ok(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    return 7 <= digits <= 15


def _ipv6_ok(candidate: str) -> bool:
    try:
        addr = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    # "::" and "::1"-like stubs are too short to identify anyone and common in code.
    return not addr.is_unspecified and sum(c.isalnum() for c in candidate) >= 3


# -- the default detectors (data) ---------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Square|Sq|Parkway|Pkwy|Highway|Hwy|Close|Crescent)"
)

EMAIL = PatternDetector(
    "EMAIL_ADDRESS",
    [
        Pattern(
            "email",
            r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w@])",
            0.95,
        )
    ],
)
PHONE = PatternDetector(
    "PHONE_NUMBER",
    [
        Pattern(
            "phone (international)",
            r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)",
            0.7,
        ),
        Pattern(
            "phone (national, trunk prefix 0)",
            r"(?<![\w+.])(?<![\dA-Z][ -])0\d{1,4}[ -]\d{3,4}(?:[ -]?\d{2,4}){1,2}(?![\w -]\d)(?!\w)",
            0.6,
        ),
        Pattern(
            "phone (north america)",
            r"(?<![\w+])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)",
            0.6,
        ),
    ],
    _phone_ok,
)
CREDIT_CARD = PatternDetector(
    "CREDIT_CARD",
    # Digits grouped by spaces (one or two), dashes, dots or slashes, as people type them.
    [Pattern("card number", r"(?<![\d./-])\d(?:(?: {1,2}|[./-])?\d){12,18}(?![\d-]|[./]\d)", 0.95)],
    luhn_ok,
)
IBAN = PatternDetector(
    "IBAN_CODE",
    [
        # Either case: "de89 3704 ..." typed in lower case is the same account.
        Pattern("iban (compact)", r"(?i)\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b", 0.95),
        Pattern(
            "iban (grouped)",
            r"(?i)\b[A-Z]{2}\d{2}(?: {1,2}[A-Z0-9]{4}){2,7}(?: {1,2}[A-Z0-9]{1,3})?\b",
            0.95,
        ),
    ],
    iban_checksum_ok,
)
IP_ADDRESS = PatternDetector(
    "IP_ADDRESS",
    [
        Pattern("ipv4", rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)", 0.8),
        Pattern(
            "ipv6",
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])",
            0.8,
        ),
    ],
    lambda c: ("." in c and ":" not in c) or _ipv6_ok(c),
)
US_SSN = PatternDetector(
    "US_SSN",
    [Pattern("ssn", r"(?<![\w.-])\d{3}([- .])\d{2}\1\d{4}(?![\w-]|\.\d)", 0.85)],
    _ssn_ok,
)
UK_NINO = PatternDetector(
    "UK_NINO",
    [
        Pattern(
            "nino",
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
            0.8,
        )
    ],
    _nino_ok,
)
STREET_ADDRESS = PatternDetector(
    "STREET_ADDRESS",
    [
        Pattern(
            "street (number first)",
            rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-Z][a-z]+\.?\s+){{1,4}}{_STREET_SUFFIX}\b\.?",
            0.6,
        ),
        Pattern(
            "street (number last)",
            r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|weg|gasse|platz|allee)\s+\d{1,4}[a-z]?\b",
            0.6,
        ),
    ],
)


def default_detectors() -> tuple[Detector, ...]:
    """The built-in PII detectors: email, phone, card (Luhn), IBAN (mod 97), IPv4/IPv6,
    US SSN, UK NINO, street address."""
    return (EMAIL, PHONE, CREDIT_CARD, IBAN, IP_ADDRESS, US_SSN, UK_NINO, STREET_ADDRESS)


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the best of overlapping spans (higher score, then longer, then earlier).

    A card number also reads as a phone number; one span per region keeps redaction simple.
    """
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: (s.start, s.end))


def detect(text: str, detectors: Sequence[Detector] | None = None) -> list[Span]:
    """Find PII in ``text``.

    Args:
        text: The text to analyze.
        detectors: Detectors to run; default :func:`default_detectors`.

    Returns:
        Non-overlapping spans sorted by position.
    """
    found: list[Span] = []
    for detector in default_detectors() if detectors is None else detectors:
        found.extend(detector.analyze(text))
    return resolve_overlaps(found)
