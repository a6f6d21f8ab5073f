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
from specsteer.privacy._nearcopy import Run, is_near_copy, runs, spaced_runs
from specsteer.privacy._normalize import fold

__all__ = ["OverlapIndex", "tokenize"]

_WORD = re.compile(r"\w+")
_CANDIDATE = re.compile(r"\w(?:[\w-]*\w)?")
_PART = re.compile(r"[^\W_]+")
_PART_GAP = re.compile(r"[-_]")
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALPHA = re.compile(r"[^\W\d_]")

PRIVATE_TEXT = "PRIVATE_TEXT"
PRIVATE_TOKEN = "PRIVATE_TOKEN"
# Below the checksum detectors and emails (their spans stay theirs), above phone numbers and
# addresses (a private one is kept local rather than pseudonymized).
_NEAR_COPY_SCORE = 0.9


def _stem(word: str) -> str:
    """A light stem of a lower-case word (Snowball English): "harbourviews" -> "harbourview"."""
    from specsteer.privacy._words import stem

    return stem(word)


def _outermost(spans: list[Span]) -> list[Span]:
    """Sorted, without spans that lie inside another one (a private word inside a private
    password written out in words is reported once, as the password)."""
    out = [
        s
        for s in spans
        if not any(
            o is not s
            and o.start <= s.start
            and s.end <= o.end
            and (o.start, o.end) != (s.start, s.end)
            for o in spans
        )
    ]
    unique = {(s.start, s.end): s for s in sorted(out, key=lambda s: s.score)}  # best last
    return sorted(unique.values(), key=lambda s: (s.start, s.end))


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
        self._stems: set[str] = set()  # light stems of the letters-only distinctive tokens
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
            self._stems.clear()
            self._runs.clear()
            self._texts = 0

    def _distinctive(self, text: str) -> Iterable[str]:
        """Distinctive tokens of ``text``: whole compounds, and each distinctive part of one
        ("Okafor-Lindqvist" gives "Okafor-Lindqvist", "Okafor" and "Lindqvist")."""
        if self.min_token_chars == 0:
            return ()
        return (t for _, _, t in self._candidates(text) if self._is_distinctive(t))

    def _candidates(self, text: str) -> Iterable[tuple[int, int, str]]:
        """Words and compounds of ``text`` long enough to be distinctive, and the parts of each
        compound, with their spans."""
        for m in _CANDIDATE.finditer(text):
            word = m.group(0)
            if len(word) >= self.min_token_chars:
                yield m.start(), m.end(), word
            if len(word) > self.min_token_chars and _PART_GAP.search(word):
                for part in _PART.finditer(word):
                    if len(part.group(0)) >= self.min_token_chars:
                        yield m.start() + part.start(), m.start() + part.end(), part.group(0)

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
        def hit(r: Run) -> bool:
            return any(
                is_near_copy(r.compact, p, min_chars=self.min_token_chars)
                # Read across spaces, a run must start and end with words of the private one:
                # "to" before an IBAN is not part of it.
                and (not r.edges[0] or (r.edges[0] in p and r.edges[1] in p))
                for p in idents
            )

        found = sorted((r.start, r.end) for r in (*runs(text), *spaced_runs(text)) if hit(r))
        merged: list[list[int]] = []  # a secret written out in words is one span
        for start, end in found:
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [Span(a, b, PRIVATE_TOKEN, _NEAR_COPY_SCORE) for a, b in merged]

    def add(self, texts: Iterable[str]) -> None:
        """Index private texts (retrieved context, memories), in the scanning form (:func:`fold`)."""
        for raw in texts:
            text = fold(raw).text
            words = [w for w, _, _ in tokenize(text)]
            grams = {hash(tuple(words[i : i + self.n])) for i in range(len(words) - self.n + 1)}
            tokens = {t.casefold() for t in self._distinctive(text)}
            stems = {_stem(t) for t in tokens if t.isalpha()}
            idents = self._identifiers(text)
            with self._lock:
                self._grams.update(grams)
                if self.min_short and self.min_short <= len(words) < self.n:
                    self._short.setdefault(len(words), set()).add(hash(tuple(words)))
                self._tokens.update(tokens)
                self._stems.update(stems)
                self._runs.update(idents)
                self._texts += 1

    def find(self, text: str) -> list[Span]:
        """Return the spans of ``text`` that repeat indexed private text, merged and sorted.

        ``text`` is scanned in its folded form (:func:`fold`); the spans index ``text`` itself.
        Overlapping or touching n-gram hits merge into one ``PRIVATE_TEXT`` span covering the
        words from the first to the last; distinctive tokens (whole, a part of a compound, or
        the same word after light stemming) come as ``PRIVATE_TOKEN`` spans.
        """
        folded = fold(text)
        with self._lock:
            grams, short = self._grams, dict(self._short)
            tokens, stems, idents = set(self._tokens), set(self._stems), set(self._runs)
            toks = tokenize(folded.text)
            spans = self._ngram_spans(toks, grams, short)
            token_spans = self._token_spans(folded.text, tokens, stems) if tokens else []
        near = self._near_copies(folded.text, idents) if idents else []
        found = _outermost([*spans, *token_spans, *near])
        return (
            [Span(*folded.original(s.start, s.end), s.entity, s.score) for s in found]
            if folded.origin
            else found
        )

    def _ngram_spans(
        self, toks: list[tuple[str, int, int]], grams: set[int], short: dict[int, set[int]]
    ) -> list[Span]:
        words = [w for w, _, _ in toks]
        hits: list[tuple[int, int]] = []  # (first word, last word) inclusive
        if grams:
            for i in range(len(words) - self.n + 1):
                if hash(tuple(words[i : i + self.n])) in grams:
                    hits.append((i, i + self.n - 1))
        for length, hashes in short.items():
            for i in range(len(words) - length + 1):
                if hash(tuple(words[i : i + length])) in hashes:
                    hits.append((i, i + length - 1))
        merged: list[list[int]] = []
        for first, last in sorted(hits):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return [Span(toks[a][1], toks[b][2], PRIVATE_TEXT, 1.0) for a, b in merged]

    def _token_spans(self, text: str, tokens: set[str], stems: set[str]) -> list[Span]:
        """Candidates that are a private token, or share a rare private word's stem
        ("Harbourviews" for "Harbourview"); a part inside a matched compound is not repeated."""
        spans: list[Span] = []
        for start, end, word in self._candidates(text):
            low = word.casefold()
            private = low in tokens or (stems and low.isalpha() and _stem(low) in stems)
            if private and not any(s.start <= start and end <= s.end for s in spans):
                spans.append(Span(start, end, PRIVATE_TOKEN, 1.0))
        return spans
