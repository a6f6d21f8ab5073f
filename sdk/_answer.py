"""The answer as it grows: the user's tokens, the cloud's view of them, the end and the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Answer", "may_end"]


def may_end(at: int, *, ignore_eos: bool, min_tokens: int) -> bool:
    """Whether an end token may stand at answer position ``at``: not in a run that ignores the
    end (fixed-length benchmark runs), nor before ``min_tokens``."""
    return not ignore_eos and at >= min_tokens


@dataclass
class Answer:
    """The user's answer and the cloud's view of it.

    The two are equal unless a span was kept on the device: the cloud's view then holds a
    placeholder where the user's answer holds the span.

    Args:
        eos: the device model's end tokens.
        budget: the most tokens the answer may hold (``max_new_tokens``).
        ignore_eos: drop end tokens instead of ending (fixed-length benchmark runs).
        min_tokens: end tokens are dropped before the answer holds this many.
    """

    eos: frozenset[int]
    budget: int
    ignore_eos: bool = False
    min_tokens: int = 0
    tokens: list[int] = field(default_factory=list)
    public: list[int] = field(default_factory=list)
    ended: bool = False

    @property
    def room(self) -> int:
        """Tokens left before the budget."""
        return self.budget - len(self.tokens)

    @property
    def done(self) -> bool:
        """Whether the answer ended or is full."""
        return self.ended or self.room <= 0

    def take(self, new: Sequence[int]) -> tuple[int, ...]:
        """Append what the budget and the end allow of ``new``; returns what was appended."""
        if self.ended:
            return ()
        new = self._without_early_ends(new)[: max(0, self.room)]
        for i, tok in enumerate(new):
            if tok in self.eos:
                new = new[: i + 1]
                self.ended = True
                break
        self.tokens.extend(new)
        self.public.extend(new)
        return tuple(new)

    def may_end(self, at: int) -> bool:
        """Whether an end token may stand at answer position ``at`` (:func:`may_end`)."""
        return may_end(at, ignore_eos=self.ignore_eos, min_tokens=self.min_tokens)

    def _without_early_ends(self, new: Sequence[int]) -> list[int]:
        """``new`` less the end tokens that would come where the answer may not end yet."""
        kept: list[int] = []
        for tok in new:
            if tok not in self.eos or self.may_end(len(self.tokens) + len(kept)):
                kept.append(tok)
        return kept

    def sign(self, ids: Sequence[int]) -> bool:
        """Put ``ids`` before the end token of an answer that ended, where the budget has room
        (the user's sign-off); the cloud's view is unchanged, as nothing is sent after the end.
        Returns whether they were put."""
        if not (self.ended and self.tokens and ids) or len(ids) > self.room:
            return False
        self.tokens[-1:-1] = ids
        return True

    def take_local(self, new: Sequence[int], public: Sequence[int]) -> tuple[int, ...]:
        """Append ``new`` for the user while the cloud's view becomes ``public``."""
        taken = self.take(new)
        self.public = list(public)
        return taken
