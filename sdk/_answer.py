"""The answer as it grows: the user's tokens, the cloud's view of them, the end and the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Answer"]


@dataclass
class Answer:
    """The user's answer and the cloud's view of it.

    The two are equal unless a span was kept on the device: the cloud's view then holds a
    placeholder where the user's answer holds the span.

    Args:
        eos: the device model's end tokens.
        budget: the most tokens the answer may hold (``max_new_tokens``).
        ignore_eos: drop end tokens instead of ending (fixed-length benchmark runs).
    """

    eos: frozenset[int]
    budget: int
    ignore_eos: bool = False
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
        if self.ignore_eos:  # fixed-length runs: an end token is dropped
            new = [t for t in new if t not in self.eos]
        new = list(new[: max(0, self.room)])
        for i, tok in enumerate(new):
            if tok in self.eos:
                new = new[: i + 1]
                self.ended = True
                break
        self.tokens.extend(new)
        self.public.extend(new)
        return tuple(new)

    def take_local(self, new: Sequence[int], public: Sequence[int]) -> tuple[int, ...]:
        """Append ``new`` for the user while the cloud's view becomes ``public``."""
        taken = self.take(new)
        self.public = list(public)
        return taken
