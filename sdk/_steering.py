"""Steering only where the public view agrees: recovery's defence against an active cloud.

At a recovery the device picks among the cloud's top-k candidates by
``log P_L + beta * (log P_S - log P_S0)``, and the token it picks is in the next request's
prefix. A cloud that lies can use that: it rejects a draft, offers k candidates of equal fake
probability (the eight cities a user might live in), and reads which one the private term chose,
about ``log2(k)`` bits of the private context per forced rejection (docs/privacy.md, "An active
cloud").

The defence here is one pure function over the candidates' rows: the private term may only
steer among candidates the device's own context-free model also ranks (within its top
``top_m`` at that position). Every other candidate gets one shared steering term, the lowest
any ranked candidate gets (or zero, when that is higher), so the private context cannot tell
them apart, and none of them wins *because* the private context turned away from the ranked
ones: with a zero term instead, an end token the cloud offered after a concealed span beat every
ranked candidate the device steered down, and answers stopped mid-phrase ("You could cook
mushroom risotto, a classic Italian"). An honest cloud's top-k and the device's public model
mostly agree, so ordinary recoveries keep their steering.
"""

from __future__ import annotations

import torch

__all__ = ["plausible_steering"]


def plausible_steering(
    lp_private_topk: torch.Tensor,
    lp_ctxfree_row: torch.Tensor,
    candidate_ids: torch.Tensor,
    top_m: int | None = None,
) -> torch.Tensor:
    """The private log-probabilities to steer with: unchanged for candidates the context-free
    model ranks within its top ``top_m``; for the others, their context-free value plus one
    shared term, the lowest lift ``log P_S - log P_S0`` of a ranked candidate (zero when that
    is higher, or when none is ranked).

    Args:
        lp_private_topk: ``[k]`` log P_S of the candidates (with the private context).
        lp_ctxfree_row: ``[vocab]`` log P_S0 at the same position (the public view).
        candidate_ids: ``[k]`` long: the device token each candidate starts with.
        top_m: how far down the context-free ranking a candidate may be and still be steered;
            default ``k`` (the cloud's own support size).

    Returns:
        ``[k]`` log-probabilities to use as ``lp_private_topk`` in the fused score.
    """
    assert lp_private_topk.dim() == 1 and candidate_ids.shape == lp_private_topk.shape
    assert lp_ctxfree_row.dim() == 1, "expected the [vocab] context-free row"
    k = int(candidate_ids.numel())
    m = min(k if top_m is None else top_m, int(lp_ctxfree_row.numel()))
    if k == 0 or m <= 0:
        return lp_ctxfree_row[candidate_ids.long()].to(lp_private_topk.dtype)
    ids = candidate_ids.long()
    lp0 = lp_ctxfree_row[ids]  # [k]
    # Rank by value, not position among ties: a candidate tied with the m-th best is ranked.
    threshold = torch.topk(lp_ctxfree_row, m).values[-1]
    ranked = torch.isfinite(lp0) & (lp0 >= threshold)  # [k] bool
    lp0 = lp0.to(lp_private_topk.dtype)
    lift = lp_private_topk - lp0  # [k]
    steered = ranked & torch.isfinite(lift)
    floor = min(0.0, float(lift[steered].min())) if bool(steered.any()) else 0.0
    return torch.where(ranked, lp_private_topk, lp0 + floor)
