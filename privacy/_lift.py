"""The context-lift policy: how much of the private context a token carries, and how much may leave.

A draft token ``d`` is written by the device model with the private context in view. Its
*context lift* is ``log P_S(d) - log P_S0(d)``: how much more likely the context made it than the
same model without the context would have found it. A token the public model would have written
nearly as readily carries little of the context; a token only the context made likely (a name, a
city, a date from the user's memories) carries it.

The policy has two settings (in :class:`~specsteer.privacy.EgressPolicy`):

* ``max_context_lift`` (tau, nats): a token whose lift exceeds it does not leave the device; the
  round stays on the device from that token on (the cloud's view gets a placeholder instead);
* ``context_lift_budget`` (nats): the most positive lift one answer may send in all; the first
  token that would overrun it stays on the device the same way.

``inf`` for both (the default) lets every draft token through, as SpecSteer itself does.
:class:`ContextLift` applies them to one answer; it is pure bookkeeping, with no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ContextLift", "LiftReport"]


@dataclass(frozen=True)
class LiftReport:
    """What the policy did for one answer.

    Attributes:
        tokens_sent: draft or recovered tokens whose lift was counted as leaving.
        tokens_kept: tokens kept on the device because of their lift or the budget.
        nats_sent: the total positive lift of the tokens that left.
        largest_sent: the largest lift of a token that left (0 when none did).
    """

    tokens_sent: int = 0
    tokens_kept: int = 0
    nats_sent: float = 0.0
    largest_sent: float = 0.0


class ContextLift:
    """One answer's context-lift policy: which tokens may leave, and what left.

    Args:
        max_lift: tau, the most lift (nats) one token may carry out; ``inf`` switches it off.
        budget: the most positive lift (nats) one answer may carry out; ``inf`` switches it off.

    Raises:
        ValueError: a negative or NaN setting.
    """

    def __init__(self, max_lift: float = math.inf, budget: float = math.inf) -> None:
        if not max_lift >= 0 or not budget >= 0:
            raise ValueError("max_lift and budget are >= 0 nats (inf switches them off)")
        self.max_lift = max_lift
        self.budget = budget
        self._sent = 0
        self._kept = 0
        self._nats = 0.0
        self._largest = 0.0

    @property
    def active(self) -> bool:
        """Whether the policy can keep anything back."""
        return math.isfinite(self.max_lift) or math.isfinite(self.budget)

    def allowance(self, lifts: Sequence[float]) -> int:
        """How many leading tokens of a draft may leave, given their lifts (nats, in order).

        Stops before the first token whose lift exceeds ``max_lift`` or whose positive lift
        would take the answer's total past ``budget``. Nothing is counted: call :meth:`sent`
        for what then leaves and :meth:`kept` for what stays.
        """
        total = self._nats
        for i, lift in enumerate(lifts):
            total += max(0.0, lift)
            if lift > self.max_lift or total > self.budget or math.isnan(lift):
                return i
        return len(lifts)

    def sent(self, lifts: Sequence[float]) -> None:
        """Count tokens that leave the device (a draft as sent, or a recovered token)."""
        for lift in lifts:
            self._sent += 1
            self._nats += max(0.0, lift)
            self._largest = max(self._largest, lift)

    def kept(self, n: int) -> None:
        """Count ``n`` tokens kept on the device because of their lift."""
        self._kept += n

    def report(self) -> LiftReport:
        """What the policy did so far."""
        return LiftReport(self._sent, self._kept, self._nats, self._largest)
