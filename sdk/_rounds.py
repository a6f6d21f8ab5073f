"""What a round is made of: the draft-length schedule, a draft in progress, a finished draft with
every row recovery needs, and the guess a pipelined round drafts ahead on.

The stages that make and use them are :class:`specsteer._drafter.Drafter` (propose),
:class:`specsteer._link.CloudLink` (verify) and the recovery functions of
:mod:`specsteer._recover`; :class:`specsteer._loop.RoundLoop` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from specsteer._wire import WireDraft

__all__ = ["Draft", "DraftSchedule", "Drafting", "Guess", "LazyRow"]


@dataclass
class DraftSchedule:
    """How many tokens the next round drafts.

    Adaptive K (the rule of transformers' assisted generation): two more after a round that passed
    whole, one fewer after a rejection, within ``[1, k_max]``.
    """

    k: int
    adaptive: bool
    k_max: int

    def after(self, full: bool) -> int:
        """The size after a round that was fully accepted (``full``) or not."""
        if not self.adaptive:
            return self.k
        return min(self.k + 2, self.k_max) if full else max(1, self.k - 1)


class LazyRow:
    """A ``[V]`` row computed the first time it is asked for, then kept."""

    def __init__(self, compute: Callable[[], torch.Tensor]) -> None:
        self._compute = compute
        self._row: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        if self._row is None:
            self._row = self._compute()
        return self._row


@dataclass
class Draft:
    """One round's draft, as proposed: the tokens, how they travel, and every row recovery needs.

    Attributes:
        before: the user's answer before the draft.
        public_before: the cloud's view of it.
        wire: the draft as it travels (its ``tokens`` are the draft's tokens).
        rows: ``[len(tokens), V]`` the drafter's log-probabilities at each draft token.
        ctxfree_lp: the context-free log-probabilities sent with the draft (per wire unit).
        after: the drafter's ``[V]`` row after the whole draft (the bonus position), computed
            when first needed (a pipelined round needs it for its guess anyway).
        ctxfree: ``P_S0``'s ``[V]`` row at a draft position (``len(tokens)``: the bonus one);
            ``None`` when the drafter is itself context-free (its rows are ``P_S0``).
        scored: whether ``ctxfree_lp`` and ``ctxfree`` are filled in; a draft that left before
            its context-free scoring has neither (:meth:`~specsteer._drafter.Drafter.score`).
    """

    before: list[int]
    public_before: list[int]
    wire: WireDraft
    rows: torch.Tensor
    ctxfree_lp: list[float] | None
    after: LazyRow
    ctxfree: Callable[[int], torch.Tensor] | None = None
    scored: bool = True

    @property
    def tokens(self) -> list[int]:
        """The draft tokens."""
        return self.wire.tokens

    def drafter_row(self, n: int) -> torch.Tensor:
        """The drafter's ``[V]`` log-probabilities at draft position ``n`` (``len``: after it)."""
        return self.rows[n] if n < len(self.tokens) else self.after()

    def ctxfree_row(self, n: int) -> torch.Tensor:
        """``P_S0``'s ``[V]`` log-probabilities at draft position ``n``."""
        return self.drafter_row(n) if self.ctxfree is None else self.ctxfree(n)

    def lift(self, n: int, token: int) -> float:
        """The context lift of ``token`` at draft position ``n``: ``log P_S - log P_S0``, how
        much more likely the private context made it (0 for a context-free drafter)."""
        if self.ctxfree is None:
            return 0.0
        return float(self.drafter_row(n)[token] - self.ctxfree(n)[token])

    def lifts(self) -> list[float]:
        """The context lift of each draft token."""
        return [self.lift(i, t) for i, t in enumerate(self.tokens)]


@dataclass
class Drafting:
    """A draft in progress: drafted a token at a time, so it can stop and go on later."""

    before: list[int]  # the user's answer before the draft
    public_before: list[int]  # the cloud's view of it
    k: int
    room: int  # tokens left before max_new_tokens
    limit: int  # k, grown while a text-mode draft ends inside a character
    tokens: list[int] = field(default_factory=list)
    rows: list[torch.Tensor] = field(default_factory=list)
    draft: Draft | None = None  # set once finished

    @property
    def done(self) -> bool:
        return len(self.tokens) >= self.limit


@dataclass(frozen=True)
class Guess:
    """A pipelined round's bet: the continuation it assumes, and the next draft made on it."""

    assumed: list[int]
    next: Drafting | None

    def holds(self, new: list[int], whole: bool) -> Drafting | None:
        """The next draft, if the round passed ``whole`` and appended exactly what was assumed
        (a recovered candidate can spell the draft and the guess too, in text mode, but K then
        shrinks, so the guess's draft would be the wrong length)."""
        return self.next if self.held(new, whole) else None

    def held(self, new: list[int], whole: bool) -> bool | None:
        """Whether the draft made ahead holds (:meth:`holds`); ``None`` when none was made or
        the round did not pass whole (a rejection drops it whatever the guess)."""
        if self.next is None or not whole:
            return None
        return new == self.assumed
