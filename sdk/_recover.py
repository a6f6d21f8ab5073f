"""Recovery: the token the device writes where the cloud rejected a draft (or after a draft that
passed whole), as pure functions of the draft, the position and the cloud's candidates.

* :func:`steered` -- SpecSteer and token fusion: ``softmax_S(h_L + beta (h_S - h_S0))`` over the
  cloud's top-k support, where the private context steers the choice;
* :func:`residual` -- standard speculative decoding: ``norm(max(0, P_L - P_S0))`` over the
  support, and ``P_L`` itself after a draft that passed whole.

The math is :mod:`specsteer.fusion`; the rows come with the :class:`~specsteer._rounds.Draft`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from specsteer import fusion
from specsteer._rounds import Draft
from specsteer._steering import plausible_steering
from specsteer._wire import Candidates

__all__ = ["Recovery", "Steering", "residual", "steered"]


@dataclass(frozen=True)
class Steering:
    """The settings a recovery draws with."""

    beta: float
    greedy: bool
    top_p: float


class Recovery(Protocol):
    """Index of the candidate taken at draft position ``n`` (a rejection, or ``len(draft)``)."""

    def __call__(
        self, draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
    ) -> int: ...


def steered(
    draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
) -> int:
    """SpecSteer's steered recovery over the cloud's candidates."""
    first = cands.first  # [k] the device token each candidate starts with
    row0 = draft.ctxfree_row(n)  # [V] log P_S0
    # The private term steers only candidates the public view also ranks: a cloud that offers
    # equally likely lures cannot read the private context from the pick (docs/privacy.md).
    private = plausible_steering(draft.drafter_row(n)[first], row0, first)  # [k] log P_S
    public = row0[first]  # [k] log P_S0
    return fusion.recover_index(
        cands.logprobs, private, public, steering.beta, steering.greedy, gen, steering.top_p
    )


def residual(
    draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
) -> int:
    """Standard speculative decoding's correction (the target distribution at the bonus)."""
    if n == len(draft.tokens):  # bonus token: the target distribution on the support
        lp0 = torch.full_like(cands.logprobs, -torch.inf)
    else:
        lp0 = draft.rows[n][cands.first]  # [k] the context-free drafter's log P_S0
    return fusion.recover_residual_index(cands.logprobs, lp0, steering.greedy, gen)
