"""Recovery: the token the device writes where the cloud rejected a draft (or after a draft that
passed whole), as pure functions of the draft, the position and the cloud's candidates.

* :func:`steered` -- SpecSteer and token fusion: ``softmax_S(h_L + beta (h_S - h_S0))`` over the
  cloud's top-k support, where the private context steers the choice;
* :func:`guess_passes` -- SpecSteer after a draft that passed whole: the device's own next token
  stands when the cloud's ratio test passes it at the bonus position too (one more draft token,
  judged by the same rule from the cloud's candidates there);
* :func:`residual` -- standard speculative decoding: ``norm(max(0, P_L - P_S0))``, and ``P_L``
  itself after a draft that passed whole; exactly, over the whole vocabulary, from the draws the
  cloud sends of its whole distribution (:class:`ResidualExhausted` asks for more), else over
  the top-k support.

Each returns the device tokens it writes.

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

__all__ = ["Recovery", "ResidualExhausted", "Steering", "guess_passes", "residual", "steered"]


@dataclass(frozen=True)
class Steering:
    """The settings a recovery draws with."""

    beta: float
    greedy: bool
    top_p: float


class Recovery(Protocol):
    """The device tokens written at draft position ``n`` (a rejection, or ``len(draft)``)."""

    def __call__(
        self, draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
    ) -> list[int]: ...


class ResidualExhausted(Exception):
    """None of the cloud's draws passed the residual's rejection test: exactness needs more
    draws of the same position (the loop asks the cloud for them)."""


def steered(
    draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
) -> list[int]:
    """SpecSteer's steered recovery over the cloud's candidates."""
    first = cands.first  # [k] the device token each candidate starts with
    row0 = draft.ctxfree_row(n)  # [V] log P_S0
    # The private term steers only candidates the public view also ranks: a cloud that offers
    # equally likely lures cannot read the private context from the pick (docs/privacy.md).
    private = plausible_steering(draft.drafter_row(n)[first], row0, first)  # [k] log P_S
    public = row0[first]  # [k] log P_S0
    index = fusion.recover_index(
        cands.logprobs, private, public, steering.beta, steering.greedy, gen, steering.top_p
    )
    return cands.tokens[index]


def guess_passes(
    draft: Draft, guess: int, cands: Candidates, lam: float, greedy: bool, gen: torch.Generator
) -> bool:
    """Whether the device's own token ``guess`` after a draft that passed whole passes SpecSteer's
    ratio test there (:func:`specsteer.fusion.verify_draft`), with ``log P_L`` from the cloud's
    candidates at the bonus position and ``log P_S0`` from the draft's context-free bonus row.

    A guess the cloud does not rank among its candidates does not pass (its ``P_L`` is unknown).
    """
    n = len(draft.tokens)
    spelled = [i for i, tokens in enumerate(cands.tokens) if tokens == [guess]]
    if not spelled:
        return False
    lp_llm = cands.logprobs[spelled[0]].reshape(1).double()  # [1] log P_L(guess)
    lp0 = draft.ctxfree_row(n)[guess].reshape(1).double()  # [1] log P_S0(guess)
    return fusion.verify_draft(lp_llm, lp0, lam, greedy, gen) == 1


def residual(
    draft: Draft, n: int, cands: Candidates, steering: Steering, gen: torch.Generator
) -> list[int]:
    """Standard speculative decoding's correction (the target distribution at the bonus).

    Raises:
        ResidualExhausted: the cloud's draws of its whole distribution were all rejected.
    """
    bonus = n == len(draft.tokens)
    if cands.samples and not steering.greedy:
        if bonus:  # the target itself: its first draw
            return [cands.samples[0][0]]
        ids = [t for t, _ in cands.samples]
        lp0 = draft.rows[n][torch.tensor(ids, dtype=torch.long)]  # [m] log P_S0 of the draws
        lp_l = torch.tensor([lp for _, lp in cands.samples], dtype=torch.float64)  # [m] log P_L
        kept = fusion.residual_from_samples(ids, lp_l, lp0, gen)
        if kept is None:
            raise ResidualExhausted
        return [ids[kept]]
    # [k] the context-free drafter's log P_S0; at the bonus, none: the target on the support
    lp0 = torch.full_like(cands.logprobs, -torch.inf) if bonus else draft.rows[n][cands.first]
    return cands.tokens[fusion.recover_residual_index(cands.logprobs, lp0, steering.greedy, gen)]
