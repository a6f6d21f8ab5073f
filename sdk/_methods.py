"""The cloud-verified methods as strategies: what each drafts with, what it sends, how it recovers.

* ``Steered``     -- SpecSteer: draft with the private context, verify with the fused ratio test,
  steer the recovery with ``beta (h_S - h_S0)``; token fusion is the same with an empty draft;
* ``Speculative`` -- standard speculative decoding: the context-free device model drafts for the
  cloud model, whose distribution the correction restores exactly.

The loop that runs them is :class:`specsteer._rounds.Rounds`; the math is in
:mod:`specsteer.fusion`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from specsteer import fusion
from specsteer._config import GenerationConfig
from specsteer._wire import Candidates, WireDraft

if TYPE_CHECKING:
    from specsteer._rounds import Rounds
    from specsteer.backends._base import KVStream

__all__ = ["Block", "CloudMethod", "Speculative", "Steered", "strategy_for"]


@dataclass
class Block:
    """One round's draft with what the device computed for it."""

    out: list[int]  # the user's answer before the draft
    pub_out: list[int]  # the cloud's view of it
    wire: WireDraft
    rows: torch.Tensor  # [len(wire.tokens), V] the drafter's log-probabilities at each draft token
    ctxfree_rows: torch.Tensor | None = None  # [len + 1, V] P_S0 rows (steered, from the device)
    ctxfree_lp: list[float] | None = None  # per unit, as sent
    #: The drafter's row after the whole draft (the bonus position); filled when first needed.
    after: torch.Tensor | None = field(default=None, repr=False)

    @property
    def tokens(self) -> list[int]:
        return self.wire.tokens


class CloudMethod(ABC):
    """One cloud-verified decoding method."""

    #: What the cloud's ratio test compares the draft against.
    target: Literal["fused", "llm"] = "fused"

    def draft_size(self, k: int) -> int:
        """Tokens to draft this round, given the schedule's ``k``."""
        return k

    def lam(self, cfg: GenerationConfig) -> float:
        return cfg.lam

    def top_p(self, cfg: GenerationConfig) -> float:
        """Nucleus for the drafter's draws."""
        return cfg.top_p

    @abstractmethod
    def drafter(self, rounds: Rounds) -> tuple[KVStream, list[int]]:
        """The stream that drafts and the prompt it drafts after."""

    @abstractmethod
    def score_ctxfree(self, rounds: Rounds, block: Block) -> None:
        """Fill ``block.ctxfree_lp`` (and rows when the method keeps them) for the request."""

    @abstractmethod
    def choose(
        self, rounds: Rounds, block: Block, n: int, cands: Candidates, gen: torch.Generator
    ) -> int:
        """Index of the candidate taken at draft position ``n`` (a rejection or the bonus)."""


class Steered(CloudMethod):
    """SpecSteer (``k`` tokens drafted) and token fusion (none)."""

    def __init__(self, *, fusion_only: bool = False) -> None:
        self.fusion_only = fusion_only

    def draft_size(self, k: int) -> int:
        return 0 if self.fusion_only else k

    def drafter(self, rounds: Rounds) -> tuple[KVStream, list[int]]:
        return rounds.private, rounds.private_ids

    def score_ctxfree(self, rounds: Rounds, block: Block) -> None:
        if rounds.cfg.ctxfree_source != "device" or not block.tokens:
            return
        # One block pass over the public view scores every draft token and the bonus row.
        rows = rounds.public.logits(rounds.public_ids + block.pub_out, block.tokens)
        block.ctxfree_rows = fusion.processed_log_probs(
            rows, block.pub_out, rounds.cfg.processing, block.tokens
        )
        block.ctxfree_lp = rounds.wire.per_unit(
            gather(block.ctxfree_rows[:-1], block.tokens), block.wire
        )

    def choose(
        self, rounds: Rounds, block: Block, n: int, cands: Candidates, gen: torch.Generator
    ) -> int:
        cfg = rounds.cfg
        row = rounds.drafter_row(block, n)
        if block.ctxfree_rows is not None:
            row0 = block.ctxfree_rows[n]
        else:
            row0 = rounds.row(rounds.public, rounds.public_ids, block.pub_out + block.tokens[:n])
        first = cands.first
        return fusion.recover_index(
            cands.logprobs, row[first], row0[first], cfg.beta, cfg.greedy, gen, cfg.top_p
        )


class Speculative(CloudMethod):
    """Standard speculative decoding (target: the cloud model without the context)."""

    target: Literal["fused", "llm"] = "llm"

    def lam(self, cfg: GenerationConfig) -> float:
        return 1.0

    def top_p(self, cfg: GenerationConfig) -> float:
        # The correction assumes drafts from the whole distribution.
        return 1.0

    def drafter(self, rounds: Rounds) -> tuple[KVStream, list[int]]:
        # It drafts from the user's own answer: the cloud's view may hold placeholders for spans
        # kept on the device, and those must never be fed to a drafter.
        return rounds.public, rounds.public_ids

    def score_ctxfree(self, rounds: Rounds, block: Block) -> None:
        block.ctxfree_lp = rounds.wire.per_unit(gather(block.rows, block.tokens), block.wire)

    def choose(
        self, rounds: Rounds, block: Block, n: int, cands: Candidates, gen: torch.Generator
    ) -> int:
        if n == len(block.tokens):  # bonus token: the target distribution on the support
            lp0 = torch.full_like(cands.logprobs, -torch.inf)
        else:
            lp0 = block.rows[n][cands.first]
        return fusion.recover_residual_index(cands.logprobs, lp0, rounds.cfg.greedy, gen)


def strategy_for(method: str) -> CloudMethod:
    """The strategy of a cloud-verified method."""
    if method == "speculative":
        return Speculative()
    return Steered(fusion_only=method == "token_fusion")


def gather(rows: torch.Tensor, ids: list[int]) -> list[float]:
    """``rows[i, ids[i]]`` as plain floats (clamped to <= 0 for the wire)."""
    if not ids:
        return []
    vals = rows[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)]  # [K]
    return [min(0.0, float(v)) for v in vals.tolist()]
