"""Near-copies of private identifiers: account, phone and card numbers, booking codes.

A device model that copies a number from the user's memory does not always copy it exactly: it
drops a digit, regroups the digits, writes a phone number in its national form, or splits the
number between the accepted prefix and the new draft. An exact, whole-token match misses all of
these, so identifiers are compared here as *runs*: letters and digits with the separators between
them removed, case-folded ("DE89 3704 0044" -> ``de8937040044``).

A run of the outbound text is a near-copy of a private run when

* they share a stretch of at least ``min_chars`` characters holding at least
  ``min_shared_digits`` digits (an account number inside an IBAN, a number embedded in other
  text), or
* one lies inside the other within a few edits: none below 8 characters, 1 below 12, 2 from 12
  on (digits dropped, changed or added; a trunk prefix instead of a country code).

Only runs that hold a digit count, and only private runs of at least ``min_chars`` characters:
years, times, prices and small counts are shorter than that, and ordinary words hold no digit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Run", "is_near_copy", "runs", "spaced_runs"]

_CHUNK = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")
# Between two chunks that both hold digits: grouping ("3704 0044", "020-7946", "12,000",
# "(020) 7946"), or a field edge in a joined payload view ("...00\n44..."); not a list's ", ".
_DIGIT_GAP = re.compile(r"[\s\-./()+]{1,2}|,")
# Inside one identifier whatever the chunks hold: "SKU-88213", "AB_12", "v1.2".
_IDENT_GAP = re.compile(r"[-_./]")
# Between words of an identifier written out with spaces: "tortellini banana 77".
_SPACED_GAP = re.compile(r"[\s\-_./]{1,2}")
#: The most words a spaced-out identifier is read across.
_SPACED_WORDS = 4


@dataclass(frozen=True)
class Run:
    """Letters and digits of one identifier-like stretch of text, separators removed.

    Attributes:
        compact: The case-folded letters and digits.
        start: Where the stretch starts in the text.
        end: Where it ends.
    """

    compact: str
    start: int
    end: int
    #: For a run read across spaces, its first and last word (case-folded).
    edges: tuple[str, str] = ("", "")

    @property
    def digits(self) -> int:
        """How many digits the run holds."""
        return sum(c.isdigit() for c in self.compact)


def _joins(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    gap = text[left.end() : right.start()]
    if _IDENT_GAP.fullmatch(gap):
        return True
    return bool(_DIGIT_GAP.fullmatch(gap)) and _has_digit(left[0]) and _has_digit(right[0])


def _has_digit(s: str) -> bool:
    return any(c.isdigit() for c in s)


def runs(text: str) -> Iterator[Run]:
    """The runs of ``text`` that hold at least one digit, with their character spans."""
    group: list[re.Match[str]] = []
    for m in _CHUNK.finditer(text):
        if group and not _joins(text, group[-1], m):
            yield from _run(group)
            group = []
        group.append(m)
    yield from _run(group)


def spaced_runs(text: str) -> Iterator[Run]:
    """Runs read across spaces too: every stretch of 2 to 4 words joined by spaces or
    separators that holds both letters and digits ("tortellini banana 77" ->
    ``tortellinibanana77``), for a private identifier written out with spaces."""
    if not _DIGIT.search(text):
        return
    chunks = list(_CHUNK.finditer(text))
    for i in range(len(chunks)):
        for j in range(i + 1, min(i + _SPACED_WORDS, len(chunks))):
            if not _SPACED_GAP.fullmatch(text[chunks[j - 1].end() : chunks[j].start()]):
                break
            compact = "".join(m[0] for m in chunks[i : j + 1]).casefold()
            if _has_digit(compact) and not compact.isdigit():
                edges = (chunks[i][0].casefold(), chunks[j][0].casefold())
                yield Run(compact, chunks[i].start(), chunks[j].end(), edges)


def _run(group: list[re.Match[str]]) -> Iterable[Run]:
    compact = "".join(m[0] for m in group).casefold()
    return (Run(compact, group[0].start(), group[-1].end()),) if _has_digit(compact) else ()


def _edits_allowed(n: int) -> int:
    return 0 if n < 8 else 1 if n < 12 else 2


def _inside(a: str, b: str, k: int) -> bool:
    """True when ``a`` matches some stretch of ``b`` with at most ``k`` edits (Sellers)."""
    if len(a) - k > len(b):
        return False
    prev = [0] * (len(b) + 1)
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j - 1] + (ca != cb), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return min(prev) <= k


def _shares(a: str, b: str, min_chars: int, min_digits: int) -> bool:
    """True when ``a`` and ``b`` share a stretch of ``min_chars``+ characters with
    ``min_digits``+ digits."""
    prev = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                cur[j] = length = prev[j - 1] + 1
                stretch = a[i - length : i]
                if length >= min_chars and sum(c.isdigit() for c in stretch) >= min_digits:
                    return True
        prev = cur
    return False


def _trigrams(s: str) -> set[str]:
    return {s[i : i + 3] for i in range(len(s) - 2)}


def is_near_copy(out: str, private: str, *, min_chars: int = 6, min_shared_digits: int = 4) -> bool:
    """True when the outbound run ``out`` nearly copies the private run ``private``.

    Both are compact runs (see :func:`runs`); ``private`` is at least ``min_chars`` long.
    """
    if len(out) < min_chars or not _trigrams(out) & _trigrams(private):
        return False  # within the allowed edits, a near-copy always keeps a shared trigram
    if _shares(out, private, min_chars, min_shared_digits):
        return True
    return _inside(out, private, _edits_allowed(len(out))) or _inside(
        private, out, _edits_allowed(len(private))
    )
