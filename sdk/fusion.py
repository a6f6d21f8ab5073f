"""The fusion math of SpecSteer, as pure functions of tensors (DESIGN section 3).

Notation at a decoding position t:

* ``h_S``  -- device model logits given (x, c, y<t): private, never leaves the device;
* ``h_S0`` -- device model logits given (x, y<t): the same model without the private context;
* ``h_L``  -- cloud model logits given (x, y<t).

The fused target is ``log pi(y) = log P_L(y) + beta * (log P_S(y) - log P_S0(y)) - log Z``.
Drafts come from ``P_S``; the cloud accepts draft token ``d`` iff
``u <= min(1, P_L(d) / (lam * P_S0(d)))`` (greedy: iff ``P_L(d) >= lam * P_S0(d)``), a test in
which the private term cancels; at the first rejection the device recovers from
``softmax_S(h_L + beta * (h_S - h_S0))`` over the cloud's top-k support ``S``.

Every distribution here is ``log_softmax(logits / temperature)``, so temperature scales the final
logits the same way everywhere. No I/O, no global randomness: generators are passed in. This
module imports nothing from the package, so the device engine and the cloud server share it.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "acceptance_probs",
    "draft_token",
    "fused_scores",
    "log_probs",
    "recover",
    "recover_index",
    "recover_residual",
    "recover_residual_index",
    "sample_or_argmax",
    "verify_draft",
    "verify_draft_exact",
]


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities ``log_softmax(logits / temperature)`` in float32.

    Args:
        logits: ``[..., vocab]`` raw logits.
        temperature: > 0.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def sample_or_argmax(
    scores: torch.Tensor, greedy: bool, generator: torch.Generator | None = None
) -> int:
    """Index of the maximum (greedy) or a draw from ``softmax(scores)``.

    Args:
        scores: ``[n]`` unnormalized log-weights; ``-inf`` entries are never drawn.
    """
    assert scores.dim() == 1, f"scores must be [n], got {tuple(scores.shape)}"
    if greedy:
        return int(torch.argmax(scores).item())
    probs = torch.softmax(scores.double(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def draft_token(lp_private: torch.Tensor, greedy: bool, generator: torch.Generator | None) -> int:
    """Draw one draft token ``d ~ P_S`` (argmax in greedy mode).

    Args:
        lp_private: ``[vocab]`` log P_S at the position being drafted.
    """
    assert lp_private.dim() == 1, "lp_private must be [vocab]"
    return sample_or_argmax(lp_private, greedy, generator)


def acceptance_probs(lp_llm: torch.Tensor, lp_ctxfree: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-token acceptance probabilities ``min(1, P_L(d_i) / (lam * P_S0(d_i)))``.

    Args:
        lp_llm: ``[K]`` log P_L of each draft token.
        lp_ctxfree: ``[K]`` log P_S0 of each draft token.
        lam: threshold >= 0; 0 accepts everything, ``inf`` rejects everything.
    """
    assert lp_llm.shape == lp_ctxfree.shape and lp_llm.dim() == 1, "expected two [K] tensors"
    if lam < 0 or math.isnan(lam):
        raise ValueError("lam must be >= 0")
    if lam == 0:
        return torch.ones_like(lp_llm, dtype=torch.float64)
    if math.isinf(lam):
        return torch.zeros_like(lp_llm, dtype=torch.float64)
    log_ratio = lp_llm.double() - lp_ctxfree.double() - math.log(lam)
    return torch.exp(torch.clamp(log_ratio, max=0.0))


def verify_draft(
    lp_llm: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    lam: float,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """The SpecSteer ratio test: number of draft tokens accepted before the first rejection.

    Greedy: accept ``d_i`` iff ``P_L(d_i) >= lam * P_S0(d_i)``. Stochastic: iff
    ``u_i <= min(1, P_L(d_i) / (lam * P_S0(d_i)))`` with ``u_i ~ U(0, 1)`` drawn from
    ``generator``. Standard speculative decoding is the case ``lam = 1`` with a context-free
    drafter.

    Args:
        lp_llm: ``[K]`` log P_L(d_i).
        lp_ctxfree: ``[K]`` log P_S0(d_i).
    """
    k = lp_llm.shape[0]
    if k == 0:
        return 0
    if greedy:
        if lam == 0:
            return k
        if math.isinf(lam):
            return 0
        ok = lp_llm.double() >= lp_ctxfree.double() + math.log(lam)
    else:
        accept = acceptance_probs(lp_llm, lp_ctxfree, lam)
        u = torch.rand(k, generator=generator, dtype=torch.float64)
        ok = u <= accept
    rejected = torch.nonzero(~ok)
    return int(rejected[0].item()) if rejected.numel() else k


def verify_draft_exact(draft: torch.Tensor, llm_logits: torch.Tensor) -> int:
    """Greedy standard speculative decoding: accept ``d_i`` iff it is the target's argmax.

    Args:
        draft: ``[K]`` draft token ids.
        llm_logits: ``[K, vocab]`` target logits at each draft position.
    """
    assert draft.dim() == 1 and llm_logits.dim() == 2 and llm_logits.shape[0] == draft.shape[0]
    ok = torch.argmax(llm_logits, dim=-1) == draft
    rejected = torch.nonzero(~ok)
    return int(rejected[0].item()) if rejected.numel() else int(draft.shape[0])


def fused_scores(
    lp_llm_topk: torch.Tensor,
    lp_private_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Unnormalized fused log-scores over the support: ``log P_L + beta * (log P_S - log P_S0)``.

    All three arguments are ``[k]``, aligned with the cloud's top-k support.
    """
    assert lp_llm_topk.shape == lp_private_topk.shape == lp_ctxfree_topk.shape
    assert lp_llm_topk.dim() == 1, "expected [k] tensors"
    steer = lp_private_topk.double() - lp_ctxfree_topk.double()
    return lp_llm_topk.double() + beta * steer


def recover(
    topk_ids: torch.Tensor,
    lp_llm_topk: torch.Tensor,
    lp_private: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    beta: float,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """Steered recovery: a token from ``softmax_S(h_L + beta * (h_S - h_S0))``.

    Args:
        topk_ids: ``[k]`` the cloud's top-k token ids (the support ``S``).
        lp_llm_topk: ``[k]`` log P_L of those ids, as returned by the cloud.
        lp_private: ``[vocab]`` log P_S at the rejected position (private).
        lp_ctxfree: ``[vocab]`` log P_S0 at the same position.
        beta: steering strength.

    Returns:
        The chosen token id.
    """
    assert topk_ids.dim() == 1 and topk_ids.shape == lp_llm_topk.shape, "expected [k] tensors"
    assert lp_private.dim() == 1 and lp_private.shape == lp_ctxfree.shape, "expected [vocab]"
    ids = topk_ids.long()
    scores = fused_scores(lp_llm_topk, lp_private[ids], lp_ctxfree[ids], beta)
    return int(ids[sample_or_argmax(scores, greedy, generator)].item())


def recover_index(
    lp_llm_topk: torch.Tensor,
    lp_private_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    beta: float,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """:func:`recover` over candidates given by their scores (cross-vocabulary mode, where the
    candidates are strings): returns the chosen candidate's index. All tensors ``[k]``."""
    assert lp_llm_topk.dim() == 1 and lp_llm_topk.shape == lp_private_topk.shape
    assert lp_private_topk.shape == lp_ctxfree_topk.shape, "expected [k] tensors"
    scores = fused_scores(lp_llm_topk, lp_private_topk, lp_ctxfree_topk, beta)
    return sample_or_argmax(scores, greedy, generator)


def recover_residual(
    topk_ids: torch.Tensor,
    lp_llm_topk: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """Standard speculative decoding's correction: ``norm(max(0, P_L - P_S0))`` over ``S``.

    Greedy mode takes the target's argmax. When the residual is empty on the support (the
    drafter dominates everywhere there) the target distribution on the support is used.

    Args:
        topk_ids: ``[k]`` the cloud's top-k ids.
        lp_llm_topk: ``[k]`` their log P_L.
        lp_ctxfree: ``[vocab]`` the drafter's log-probabilities at that position.
    """
    assert topk_ids.dim() == 1 and topk_ids.shape == lp_llm_topk.shape
    ids = topk_ids.long()
    return int(ids[recover_residual_index(lp_llm_topk, lp_ctxfree[ids], greedy, generator)].item())


def recover_residual_index(
    lp_llm_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """:func:`recover_residual` over candidates given by their scores; returns an index."""
    assert lp_llm_topk.dim() == 1 and lp_llm_topk.shape == lp_ctxfree_topk.shape
    if greedy:
        return int(torch.argmax(lp_llm_topk).item())
    residual = torch.clamp(lp_llm_topk.double().exp() - lp_ctxfree_topk.double().exp(), min=0.0)
    weights = residual if float(residual.sum()) > 0 else lp_llm_topk.double().exp()
    choice = torch.multinomial(weights / weights.sum(), 1, generator=generator)
    return int(choice.item())
