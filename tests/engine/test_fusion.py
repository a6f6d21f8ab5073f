"""Hand-built logits with exact expected tokens, and the closed-form distribution of SpecSteer."""

from __future__ import annotations

import math

import pytest
import torch

from specsteer import fusion


def lp(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_log_probs_normalizes_and_applies_temperature() -> None:
    logits = torch.tensor([2.0, 0.0, -1.0])
    out = fusion.log_probs(logits, temperature=2.0)
    assert torch.allclose(out.exp().sum(), torch.tensor(1.0))
    assert torch.allclose(out, torch.log_softmax(logits / 2.0, -1))
    with pytest.raises(ValueError):
        fusion.log_probs(logits, 0.0)


@pytest.mark.parametrize(
    ("p_llm", "p_ctxfree", "lam", "expected"),
    [
        # P_L(d) >= lam * P_S0(d) accepts; the first failure stops.
        ([0.5, 0.4, 0.1], [0.5, 0.4, 0.9], 0.5, 2),
        ([0.3, 0.9], [0.7, 0.1], 0.5, 0),  # 0.3 < 0.35
        ([0.35, 0.9], [0.7, 0.1], 0.5, 2),  # 0.35 >= 0.35 (boundary accepts)
        ([0.1, 0.1, 0.1], [0.9, 0.9, 0.9], 0.1, 3),  # 0.1 >= 0.09
        ([0.1, 0.1], [0.9, 0.9], 0.12, 0),  # 0.1 < 0.108
        ([0.01], [0.99], 0.0, 1),  # lam = 0 accepts everything
        ([0.99], [0.01], math.inf, 0),  # lam = inf rejects everything
    ],
)
def test_greedy_verify_hand_built(
    p_llm: list[float], p_ctxfree: list[float], lam: float, expected: int
) -> None:
    assert fusion.verify_draft(lp(*p_llm), lp(*p_ctxfree), lam, greedy=True) == expected


def test_acceptance_probs_closed_form() -> None:
    acc = fusion.acceptance_probs(lp(0.2, 0.6, 0.1), lp(0.8, 0.3, 0.1), lam=0.5)
    assert torch.allclose(acc, torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64))


def test_stochastic_verify_stops_at_first_rejection() -> None:
    # Token 2 has acceptance probability 0 (P_L = 0); tokens 1 and 3 always pass.
    p_llm = torch.tensor([0.0, -math.inf, 0.0], dtype=torch.float64)
    p_s0 = torch.tensor([-1.0, -1.0, -1.0], dtype=torch.float64)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        assert fusion.verify_draft(p_llm, p_s0, 0.5, greedy=False, generator=g) == 1


def test_recover_steers_toward_private_signal() -> None:
    # The cloud slightly prefers token 0; the private context raises token 2 above it.
    topk_ids = torch.tensor([0, 2, 1])
    topk_lp = lp(0.5, 0.3, 0.2)
    lp_private = lp(0.1, 0.1, 0.8)
    lp_ctxfree = lp(0.4, 0.3, 0.3)
    assert fusion.recover(topk_ids, topk_lp, lp_private, lp_ctxfree, 1.0, greedy=True) == 2
    # beta = 0 ignores the private signal: the cloud's argmax.
    assert fusion.recover(topk_ids, topk_lp, lp_private, lp_ctxfree, 0.0, greedy=True) == 0


def test_recover_only_picks_from_the_cloud_support() -> None:
    topk_ids = torch.tensor([1, 3])
    topk_lp = lp(0.6, 0.4)
    # The private signal loves token 0, which is outside the support: it can never be chosen.
    lp_private = lp(0.97, 0.01, 0.01, 0.01)
    lp_ctxfree = lp(0.25, 0.25, 0.25, 0.25)
    g = torch.Generator().manual_seed(0)
    draws = {
        fusion.recover(topk_ids, topk_lp, lp_private, lp_ctxfree, 1.0, False, g) for _ in range(200)
    }
    assert draws <= {1, 3}


def test_fused_scores_match_the_formula() -> None:
    out = fusion.fused_scores(lp(0.5, 0.5), lp(0.9, 0.1), lp(0.5, 0.5), beta=2.0)
    expected = torch.log(torch.tensor([0.5, 0.5])) + 2.0 * torch.log(torch.tensor([1.8, 0.2]))
    assert torch.allclose(out, expected.double())


def test_exact_verify_for_standard_speculative_decoding() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 9.0]])
    assert fusion.verify_draft_exact(torch.tensor([1, 0, 2]), logits) == 3
    assert fusion.verify_draft_exact(torch.tensor([1, 2, 2]), logits) == 1


def test_residual_recovery() -> None:
    ids = torch.tensor([0, 1, 2])
    # P_L - P_S0 is positive only on token 2.
    p_l = lp(0.3, 0.3, 0.4)
    p_s0 = lp(0.5, 0.4, 0.1)
    g = torch.Generator().manual_seed(1)
    assert {fusion.recover_residual(ids, p_l, p_s0, False, g) for _ in range(100)} == {2}
    assert fusion.recover_residual(ids, p_l, p_s0, True) == 2  # greedy = target argmax


def _chi2_pvalue(observed: torch.Tensor, expected: torch.Tensor) -> float:
    mask = expected > 0
    assert float(observed[~mask].sum()) == 0, "a token with probability 0 was drawn"
    stat = float((((observed - expected) ** 2) / expected)[mask].sum())
    df = int(mask.sum()) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))


def closed_form_first_token(
    h_s: torch.Tensor, h_s0: torch.Tensor, h_l: torch.Tensor, lam: float, beta: float, top_k: int
) -> torch.Tensor:
    """P_S(y) a(y) + P(reject) recovery(y), a(y) = min(1, P_L(y) / (lam P_S0(y)))."""
    p_s, lp_s0, lp_l = (
        torch.softmax(h_s, -1),
        torch.log_softmax(h_s0, -1),
        torch.log_softmax(h_l, -1),
    )
    accept = torch.clamp(torch.exp(lp_l - lp_s0) / lam, max=1.0)
    p_reject = float((p_s * (1 - accept)).sum())
    support = torch.topk(h_l, top_k).indices
    fused = torch.full_like(h_l, -torch.inf)
    fused[support] = lp_l[support] + beta * (torch.log_softmax(h_s, -1) - lp_s0)[support]
    return p_s * accept + p_reject * torch.softmax(fused, -1)


def test_first_token_distribution_matches_closed_form() -> None:
    """20,000 seeded draft-verify-recover draws vs the closed form (chi-square, p > 0.001)."""
    h_s = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, 0.3], dtype=torch.float64)
    h_s0 = torch.tensor([0.5, 1.5, 0.5, 0.2, -0.5, 0.0], dtype=torch.float64)
    h_l = torch.tensor([0.0, 2.0, 1.0, 1.5, -2.0, 0.1], dtype=torch.float64)
    lam, beta, top_k, n = 0.5, 1.0, 4, 20_000
    lp_s, lp_s0, lp_l = (torch.log_softmax(h, -1) for h in (h_s, h_s0, h_l))
    topk_lp, topk_ids = torch.topk(lp_l, top_k)
    g = torch.Generator().manual_seed(1234)
    counts = torch.zeros(6, dtype=torch.float64)
    for _ in range(n):
        d = fusion.draft_token(lp_s, greedy=False, generator=g)
        accepted = fusion.verify_draft(lp_l[[d]], lp_s0[[d]], lam, greedy=False, generator=g)
        y = d if accepted else fusion.recover(topk_ids, topk_lp, lp_s, lp_s0, beta, False, g)
        counts[y] += 1
    expected = closed_form_first_token(h_s, h_s0, h_l, lam, beta, top_k) * n
    assert abs(float(expected.sum()) - n) < 1e-6
    assert _chi2_pvalue(counts, expected) > 0.001


def test_chi2_check_can_fail() -> None:
    """The distribution check rejects a wrong distribution (so the test above means something)."""
    expected = torch.tensor([5000.0, 5000.0])
    assert _chi2_pvalue(torch.tensor([5400.0, 4600.0]), expected) < 0.001
