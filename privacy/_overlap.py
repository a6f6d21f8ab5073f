"""Verbatim private text in outbound text: an n-gram overlap index.

Texts are tokenized into words (``\\w+``, case-folded), so matching ignores case, whitespace and
punctuation and does not depend on any model's tokenizer. The index holds hashes of every
``n``-gram of the private texts (retrieved context, the user's memories); a scan hashes each
window of the scanned text once, so it costs O(len(text)) for a fixed ``n``.

Two extra signals catch short secrets that no ``n``-gram covers:

* a private text shorter than ``n`` words but at least ``min_short`` words long is indexed
  whole, so it is found verbatim;
* *distinctive tokens* of private texts, at least ``min_token_chars`` long, are indexed one by
  one and reported as ``PRIVATE_TOKEN``: a run of letters, digits, ``-`` or ``_`` that mixes
  letters and digits (an order number ``SKU-88213``, a canary), and, with ``rare_words``, a word
  of letters that no English dictionary lists (a surname like ``Okafor``, a street, a code
  word).

What it cannot catch: paraphrase, translation, summaries, encodings (base64, spelling out), or
any text whose words differ from the private text. See ``docs/privacy.md``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from specsteer._errors import InvalidInputError
from specsteer.privacy._detectors import Span
from specsteer.privacy._nearcopy import is_near_copy, runs

__all__ = ["OverlapIndex", "tokenize"]

_WORD = re.compile(r"\w+")
_CANDIDATE = re.compile(r"\w(?:[\w-]*\w)?")
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALPHA = re.compile(r"[^\W\d_]")

PRIVATE_TEXT = "PRIVATE_TEXT"
PRIVATE_TOKEN = "PRIVATE_TOKEN"
# Below the checksum detectors and emails (their spans stay theirs), above phone numbers and
# addresses (a private one is kept local rather than pseudonymized).
_NEAR_COPY_SCORE = 0.9


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` into case-folded words with their character offsets."""
    return [(m.group(0).casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


class OverlapIndex:
    """A set of hashed word n-grams of private texts, scanned against outbound text.

    Thread-safe. Hashes are Python's (salted per process); the index lives in memory only, so
    nothing private is written to disk by it.

    Args:
        n: Words per n-gram (default 8).
        min_short: Private texts with ``min_short <= words < n`` are indexed whole; 0 disables.
        min_token_chars: Minimum length of a distinctive token and of a private identifier run
            (:mod:`._nearcopy`); 0 disables both signals.
        rare_words: Count letters-only words missing from the English dictionary as
            distinctive tokens.
    """

    def __init__(
        self, n: int = 8, *, min_short: int = 4, min_token_chars: int = 6, rare_words: bool = True
    ) -> None:
        if n < 1:
            raise InvalidInputError("overlap n must be at least 1 word")
        if min_short < 0 or min_token_chars < 0:
            raise InvalidInputError("min_short and min_token_chars must be >= 0")
        self.n = n
        self.min_short = min_short
        self.min_token_chars = min_token_chars
        self.rare_words = rare_words
        self._lock = threading.Lock()
        self._grams: set[int] = set()
        self._short: dict[int, set[int]] = {}  # length in words -> hashes of whole short texts
        self._tokens: set[str] = set()
        self._runs: set[str] = set()  # compact identifier runs of private texts
        self._texts = 0

    def __len__(self) -> int:
        """Number of private texts added since the last :meth:`clear`."""
        return self._texts

    def clear(self) -> None:
        """Forget every indexed text."""
        with self._lock:
            self._grams.clear()
            self._short.clear()
            self._tokens.clear()
            self._runs.clear()
            self._texts = 0

    def _distinctive(self, text: str) -> Iterable[re.Match[str]]:
        if self.min_token_chars == 0:
            return ()
        return (m for m in self._candidates(text) if self._is_distinctive(m.group(0)))

    def _candidates(self, text: str) -> Iterable[re.Match[str]]:
        return (m for m in _CANDIDATE.finditer(text) if len(m.group(0)) >= self.min_token_chars)

    def _is_distinctive(self, token: str) -> bool:
        if not _HAS_ALPHA.search(token):
            return False
        if _HAS_DIGIT.search(token):
            return True
        if not self.rare_words:
            return False
        from specsteer.privacy._words import is_dictionary_word

        return not all(is_dictionary_word(part) for part in re.split(r"[-_]", token) if part)

    def _identifiers(self, text: str) -> set[str]:
        if self.min_token_chars == 0:
            return set()
        return {r.compact for r in runs(text) if len(r.compact) >= self.min_token_chars}

    def _near_copies(self, text: str, idents: set[str]) -> list[Span]:
        return [
            Span(r.start, r.end, PRIVATE_TOKEN, _NEAR_COPY_SCORE)
            for r in runs(text)
            if any(is_near_copy(r.compact, p, min_chars=self.min_token_chars) for p in idents)
        ]

    def add(self, texts: Iterable[str]) -> None:
        """Index private texts (retrieved context, memories)."""
        for text in texts:
            words = [w for w, _, _ in tokenize(text)]
            grams = {hash(tuple(words[i : i + self.n])) for i in range(len(words) - self.n + 1)}
            tokens = {m.group(0).casefold() for m in self._distinctive(text)}
            idents = self._identifiers(text)
            with self._lock:
                self._grams.update(grams)
                if self.min_short and self.min_short <= len(words) < self.n:
                    self._short.setdefault(len(words), set()).add(hash(tuple(words)))
                self._tokens.update(tokens)
                self._runs.update(idents)
                self._texts += 1

    def find(self, text: str) -> list[Span]:
        """Return the spans of ``text`` that repeat indexed private text, merged and sorted.

        Overlapping or touching n-gram hits merge into one ``PRIVATE_TEXT`` span covering the
        words from the first to the last; distinctive tokens come as ``PRIVATE_TOKEN`` spans.
        """
        with self._lock:
            grams, short, tokens = self._grams, dict(self._short), self._tokens
            idents = set(self._runs)
            hits: list[tuple[int, int]] = []  # (first word, last word) inclusive
            toks = tokenize(text)
            words = [w for w, _, _ in toks]
            if grams:
                for i in range(len(words) - self.n + 1):
                    if hash(tuple(words[i : i + self.n])) in grams:
                        hits.append((i, i + self.n - 1))
            for length, hashes in short.items():
                for i in range(len(words) - length + 1):
                    if hash(tuple(words[i : i + length])) in hashes:
                        hits.append((i, i + length - 1))
            token_spans = (
                [
                    Span(m.start(), m.end(), PRIVATE_TOKEN, 1.0)
                    for m in self._candidates(text)
                    if m.group(0).casefold() in tokens
                ]
                if tokens
                else []
            )
        merged: list[list[int]] = []
        for first, last in sorted(hits):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        spans = [Span(toks[a][1], toks[b][2], PRIVATE_TEXT, 1.0) for a, b in merged]
        near = self._near_copies(text, idents) if idents else []
        spans += [
            n for n in near if not any(t.start <= n.start and n.end <= t.end for t in token_spans)
        ]
        return sorted(spans + token_spans, key=lambda s: (s.start, s.end))
