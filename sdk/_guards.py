"""The watches over a text written as the user, run on each round's tokens before they are
sent and before they are appended: its opening must not turn into a refusal
(:class:`~specsteer._opening.RefusalGuard`), it must not speak "as an AI"
(:func:`~specsteer._opening.ai_guard`), it must not call the user's things the reader's
(:func:`~specsteer._perspective.owner_guard`), and it ends before it reads out the user's notes
(:class:`~specsteer._recital.RecitalGuard`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final, Protocol

__all__ = ["PhraseGuard", "TextGuard", "TextGuards", "read_ahead"]

#: Tokens read ahead of a token that may start a phrase, to see whether it does.
AHEAD: Final = 4


def read_ahead(
    greedy: Callable[[Sequence[int]], int],
    eos: frozenset[int],
    head: Sequence[int],
    tok: int,
    given: Sequence[int],
    n: int,
) -> list[int]:
    """``head``, then ``tok`` and what follows it, ``n`` tokens in all (``tok`` the first): the
    round's next tokens ``given``, then the device's greedy ones, up to an end token (in
    SpecSteer the cloud may choose other words, so a guard reads what the device would write)."""
    ahead = [*head, tok, *given[: n - 1]]
    while len(ahead) < len(head) + n:
        nxt = greedy(ahead)
        if nxt in eos:
            break
        ahead.append(nxt)
    return ahead


class TextGuard(Protocol):
    """Finds the token of a round that must not be written, and rules it out at its position."""

    #: Tokens ruled out per answer position (the drafter and the recovery read them).
    banned: dict[int, set[int]]
    #: Answer positions where the text ends (the decoder writes the end token there).
    ends: set[int]

    def cut(self, before: Sequence[int], new: Sequence[int]) -> int | None:
        """The index in ``new`` of the first token the text may not have after ``before``
        (now ruled out at its position), or ``None``."""
        ...


class TextGuards:
    """Several guards as one: each reads what the ones before it left of the round, and all
    rule tokens out, and end the text, in shared tables."""

    def __init__(self, *guards: TextGuard) -> None:
        self.guards = guards
        self.banned: dict[int, set[int]] = {}
        self.ends: set[int] = set()
        for guard in guards:
            guard.banned, guard.ends = self.banned, self.ends

    def cut(self, before: Sequence[int], new: Sequence[int]) -> int | None:
        """The index in ``new`` of the first token a guard rules out, or ``None``."""
        cut = None
        for guard in self.guards:
            at = guard.cut(before, new[: len(new) if cut is None else cut])
            cut = at if at is not None else cut
        return cut


@dataclass
class PhraseGuard:
    """Keeps a phrase out of a text: a token that may start it (:attr:`starts`, read from the
    token's own text and the text before it) is followed for :data:`AHEAD` tokens (the round's
    own, then the device's greedy ones: in SpecSteer the cloud may choose other words, so this
    reads what the device would write); when the text from it on matches :attr:`phrase`, the
    round keeps what comes before the token, and the token is ruled out at its position
    (:attr:`banned`, which the drafter and the recovery read).

    Args:
        greedy: the device's greedy next token after an answer, with the private context and
            processed as its drafts are (:meth:`~specsteer._drafter.Drafter.greedy`).
        decode: the device tokenizer's ``decode``.
        eos: the device model's end tokens.
        starts: whether a token (its text, and the text before it) may start the phrase.
        phrase: the phrase, matched at the start of the text from that token on.
        tries: the most tokens ruled out.
        banned: tokens ruled out per answer position (shared with the other guards).
        ends: answer positions where the text ends (shared with the other guards; this one
            ends none).
    """

    greedy: Callable[[Sequence[int]], int]
    decode: Callable[[Sequence[int]], str]
    eos: frozenset[int]
    starts: Callable[[str, Callable[[], str]], bool]
    phrase: re.Pattern[str]
    tries: int = 8
    banned: dict[int, set[int]] = field(default_factory=dict)
    ends: set[int] = field(default_factory=set)
    used: int = field(default=0, init=False)

    def cut(self, before: Sequence[int], new: Sequence[int]) -> int | None:
        """The index in ``new`` of a token that starts the phrase (now ruled out at its
        position), or ``None``."""
        for i, tok in enumerate(new):
            if self.used >= self.tries:
                return None
            head = [*before, *new[:i]]
            if not self.starts(self.decode([tok]), partial(self.decode, head)):
                continue
            if self.phrase.match(self._ahead(head, tok, new[i + 1 :])) is None:
                continue
            self.banned.setdefault(len(head), set()).add(tok)
            self.used += 1
            return i
        return None

    def _ahead(self, head: list[int], tok: int, given: Sequence[int]) -> str:
        """The text from ``tok`` on: ``tok`` and :data:`AHEAD` tokens after it
        (:func:`read_ahead`)."""
        ahead = read_ahead(self.greedy, self.eos, head, tok, given, 1 + AHEAD)
        return self.decode(ahead)[len(self.decode(head)) :]
