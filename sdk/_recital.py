"""A text written as the user ends where it would start reading out the user's notes.

Given a few of the user's notes, the device model often writes the text and then lists the
other notes, one sentence each: a review of a desk fan went on "I spend far too much time (and
money) at The Reading Room, my local café. People say my messages are blunt"; a birthday wish
went on "Most Saturdays my best friend Akosua and I go sketching in High Park"
(docs/evaluation.md). A sentence that copies a note, :data:`SPAN` words in a row, reads it out.

:func:`reads_out` says whether a text reads out two notes (an eval metric); :class:`RecitalGuard`
ends the text before a sentence that would read out a note when an earlier sentence already
read out another: the first may carry what the request is about, the next one is the list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from specsteer._guards import read_ahead

__all__ = ["RecitalGuard", "notes_read", "reads_out"]

#: Words in a row that a sentence shares with a note to read it out.
SPAN: Final = 6
#: Tokens of a sentence read to see whether it reads out a note (its first ten words or so:
#: measured on the shipped sets, nearly every read-out note starts in them).
AHEAD: Final = 12

_WORD: Final = re.compile(r"\w+(?:['’]\w+)?")
#: Text that ends a sentence: a full stop, "!" or "?" (closing quotes or brackets may follow)
#: and spaces, or a line break.
_SENTENCE_END: Final = re.compile(r"(?:[.!?][\"'’”)\]]*[ \t]*|\n\s*)$")
_SENTENCES: Final = re.compile(r"(?<=[.!?])\s+|\n+")


def _grams(text: str) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return {tuple(words[i : i + SPAN]) for i in range(len(words) - SPAN + 1)}


def notes_read(text: str, notes: Sequence[str]) -> set[int]:
    """The indices of the ``notes`` that ``text`` shares :data:`SPAN` words in a row with
    (case-insensitive, punctuation ignored)."""
    return _read(text, [_grams(note) for note in notes])


def _read(text: str, notes: Sequence[set[tuple[str, ...]]]) -> set[int]:
    """:func:`notes_read`, with each note's runs of :data:`SPAN` words made once."""
    grams = _grams(text)
    return {i for i, note in enumerate(notes) if grams & note}


def reads_out(text: str, notes: Iterable[str]) -> bool:
    """Whether ``text`` reads out two or more of the user's ``notes``: a sentence of it shares
    :data:`SPAN` words in a row with a note that no sentence before it shares them with, after
    a sentence that did so with another."""
    notes = list(notes)
    read: set[int] = set()
    for sentence in _SENTENCES.split(text):
        found = notes_read(sentence, notes)
        if read and found and not found & read:
            return True
        read |= found
    return False


@dataclass
class RecitalGuard:
    """Ends a text written as the user before a sentence that reads out another of the user's
    notes (:func:`reads_out`).

    At a token that starts a sentence, after a sentence that read out a note, the sentence is
    read :data:`AHEAD` tokens on (the round's own, then the device's greedy ones: in SpecSteer
    the cloud may choose other words, so this reads what the device would write). When it
    would read out a note none before it did, the text ends there: the round keeps what comes
    before the token, the position joins :attr:`ends`, and the decoder writes the end token
    there (it may not end before ``may_end`` allows).

    Args:
        greedy: the device's greedy next token after an answer, with the private context and
            processed as its drafts are (:meth:`~specsteer._drafter.Drafter.greedy`).
        decode: the device tokenizer's ``decode``.
        eos: the device model's end tokens.
        notes: the user's notes the device was given.
        may_end: whether the answer may end at a position.
        banned: tokens ruled out per answer position (shared with the other guards; this one
            rules out none).
        ends: answer positions where the text ends (shared with the other guards).
    """

    greedy: Callable[[Sequence[int]], int]
    decode: Callable[[Sequence[int]], str]
    eos: frozenset[int]
    notes: Sequence[str]
    may_end: Callable[[int], bool]
    banned: dict[int, set[int]] = field(default_factory=dict)
    ends: set[int] = field(default_factory=set)
    _grams: list[set[tuple[str, ...]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._grams = [_grams(note) for note in self.notes]

    def cut(self, before: Sequence[int], new: Sequence[int]) -> int | None:
        """The index in ``new`` of the token where the text ends instead, or ``None``."""
        for i, tok in enumerate(new):
            at = len(before) + i
            if at in self.ends:
                return None if tok in self.eos else i
            if not self.may_end(at) or tok in self.eos or not _WORD.search(self.decode([tok])):
                continue
            head = [*before, *new[:i]]
            text = self.decode(head)
            if not text.strip() or not _SENTENCE_END.search(text):
                continue  # not a sentence's first word
            read = set().union(*(_read(s, self._grams) for s in _SENTENCES.split(text)))
            if not read:
                continue
            found = _read(self._ahead(head, tok, new[i + 1 :], text), self._grams)
            if found and not found & read:
                self.ends.add(at)
                return i
        return None

    def _ahead(self, head: list[int], tok: int, given: Sequence[int], text: str) -> str:
        """The sentence from ``tok`` on, :data:`AHEAD` tokens of it (:func:`read_ahead`)."""
        ahead = read_ahead(self.greedy, self.eos, head, tok, given, AHEAD)
        rest = self.decode(ahead)[len(text) :]
        return _SENTENCES.split(rest.strip(), maxsplit=1)[0]
