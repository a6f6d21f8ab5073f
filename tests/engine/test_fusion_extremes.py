"""The fusion math at extreme values: ``-inf`` (probability 0), log-probabilities far below
``exp``'s range (vLLM writes ``-inf`` as -9999), rows with nothing left, temperatures near 0.

Hand-built cases first (each a behaviour that used to be a NaN, a crash or a silent token 0), then
Hypothesis properties over rows drawn from those values: no choice is ever driven by a NaN, no
``-inf`` candidate is chosen while a finite one exists, greedy and sampled agree wherever the
outcome is certain, and an empty choice is a typed error.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specsteer import DegenerateScoresError, fusion

INF = math.inf


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- hand-built ----------------------------------------------------------------------------------


@pytest.mark.parametrize("greedy", [True, False])
def test_an_item_both_models_rule_out_is_rejected_in_both_modes(greedy: bool) -> None:
    """P_L(d) = P_S0(d) = 0: the fused target has no mass on d (greedy used to accept it)."""
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        assert fusion.verify_draft(t(-INF), t(-INF), 0.5, greedy, gen) == 0
        assert fusion.verify_draft(t(-0.1, -INF), t(-0.1, -INF), 0.5, greedy, gen) == 1


@pytest.mark.parametrize("greedy", [True, False])
def test_an_item_only_the_drafter_rules_out_is_accepted_in_both_modes(greedy: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    assert fusion.verify_draft(t(-3.0), t(-INF), 0.5, greedy, gen) == 1


def test_residual_recovery_below_exps_range_weighs_the_candidates() -> None:
    """Every candidate at or below -745 (exp underflows to 0) used to divide 0 by 0."""
    lp_llm = t(-9999.0, -800.0, -801.0)
    lp0 = t(-9999.0, -9999.0, -9999.0)
    draws = [
        fusion.recover_residual_index(lp_llm, lp0, False, torch.Generator().manual_seed(s))
        for s in range(400)
    ]
    # Relative weights 0 : 1 : e^-1, whatever exp makes of the absolute values.
    assert set(draws) == {1, 2}
    assert 0.6 < draws.count(1) / len(draws) < 0.85
    assert fusion.recover_residual_index(lp_llm, lp0, True) == 1


@pytest.mark.parametrize("greedy", [True, False])
def test_a_row_with_nothing_left_is_a_typed_error(greedy: bool) -> None:
    """``no_repeat_ngram_size=1`` after every token has been used: no candidate is left."""
    row = fusion.processed_log_probs(
        torch.randn(6), [0, 1, 2, 3, 4, 5], fusion.Processing(no_repeat_ngram_size=1)
    )
    assert torch.isneginf(row).all()  # no NaN: an empty row stays -inf
    with pytest.raises(DegenerateScoresError, match="no_repeat_ngram_size"):
        fusion.draft_token(row, greedy, torch.Generator().manual_seed(0))
    with pytest.raises(DegenerateScoresError):
        fusion.recover_residual_index(row, row, greedy, torch.Generator().manual_seed(0))
    with pytest.raises(DegenerateScoresError):
        fusion.recover_index(row, row, row, 1.0, greedy, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("temperature", [1e-40, 1e-31, 1e-12])
def test_a_temperature_near_zero_is_the_argmax(temperature: float) -> None:
    """1e-40 used to give NaN everywhere, and greedy then picked token 0."""
    logits = torch.tensor([1.0, 3.0, 2.0, -INF])
    out = fusion.log_probs(logits, temperature)
    assert not torch.isnan(out).any()
    assert out.exp().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert fusion.sample_or_argmax(out, True) == 1
    assert fusion.sample_or_argmax(out, False, torch.Generator().manual_seed(0)) == 1


def test_ties_share_the_limit() -> None:
    out = fusion.log_probs(torch.tensor([2.0, 2.0, 1.0]), 1e-40)
    assert torch.allclose(out[:2].exp(), torch.tensor([0.5, 0.5]))


def test_nan_scores_are_a_typed_error_not_a_choice() -> None:
    with pytest.raises(DegenerateScoresError, match="NaN"):
        fusion.sample_or_argmax(torch.tensor([float("nan"), 0.0]), True)
    with pytest.raises(DegenerateScoresError, match="NaN"):
        fusion.verify_draft(t(float("nan")), t(-1.0), 0.5, True)


# -- properties ----------------------------------------------------------------------------------

EXTREME = st.sampled_from([-INF, -9999.0, -800.0, -746.0, -745.0, -1e-300, 0.0])
VALUE = st.one_of(EXTREME, st.floats(min_value=-60.0, max_value=0.0))
ROW = st.lists(VALUE, min_size=1, max_size=8)
LAM = st.sampled_from([1e-30, 0.1, 0.5, 1.0, 2.0, 1e30])
SEEDS = range(8)


def finite_indices(row: list[float]) -> set[int]:
    return {i for i, v in enumerate(row) if math.isfinite(v)}


@given(row=ROW, greedy=st.booleans())
@settings(max_examples=300, deadline=None)
def test_choices_never_pick_a_ruled_out_candidate(row: list[float], greedy: bool) -> None:
    scores, finite = t(*row), finite_indices(row)
    if not finite:
        with pytest.raises(DegenerateScoresError):
            fusion.sample_or_argmax(scores, greedy)
        return
    for seed in SEEDS:
        gen = torch.Generator().manual_seed(seed)
        assert fusion.sample_or_argmax(scores, greedy, gen) in finite
    if len(finite) == 1:  # a certain outcome: both modes agree
        (only,) = finite
        assert fusion.sample_or_argmax(scores, True) == only
        assert fusion.sample_or_argmax(scores, False, torch.Generator().manual_seed(1)) == only


@given(lp_llm=ROW, lp0=ROW, greedy=st.booleans())
@settings(max_examples=300, deadline=None)
def test_residual_recovery_never_picks_a_ruled_out_candidate(
    lp_llm: list[float], lp0: list[float], greedy: bool
) -> None:
    n = min(len(lp_llm), len(lp0))
    llm, ctxfree, finite = t(*lp_llm[:n]), t(*lp0[:n]), finite_indices(lp_llm[:n])
    if not finite:
        with pytest.raises(DegenerateScoresError):
            fusion.recover_residual_index(llm, ctxfree, greedy)
        return
    picks = {
        fusion.recover_residual_index(llm, ctxfree, greedy, torch.Generator().manual_seed(s))
        for s in SEEDS
    }
    assert picks <= finite
    if len(finite) == 1:
        assert picks == finite
        assert fusion.recover_residual_index(llm, ctxfree, not greedy) in finite


@given(lp_llm=ROW, lp0=ROW, lam=LAM)
@settings(max_examples=300, deadline=None)
def test_the_ratio_test_agrees_between_modes_where_the_outcome_is_certain(
    lp_llm: list[float], lp0: list[float], lam: float
) -> None:
    n = min(len(lp_llm), len(lp0))
    llm, ctxfree = t(*lp_llm[:n]), t(*lp0[:n])
    greedy = fusion.verify_draft(llm, ctxfree, lam, True)
    sampled = [
        fusion.verify_draft(llm, ctxfree, lam, False, torch.Generator().manual_seed(s))
        for s in SEEDS
    ]
    for got in (greedy, *sampled):  # an item the cloud gives probability 0 is never accepted
        assert all(v > -INF for v in lp_llm[:got])
    assert not any(math.isnan(p) for p in fusion.acceptance_probs(llm, ctxfree, lam).tolist())
    # Certain outcomes: P_L(d) >= lam * P_S0(d) is accepted whatever u is (probability 1), and
    # P_L(d) = 0 rejected (probability 0); anything else leaves the verdict to the coin.
    llm_n, lp0_n = lp_llm[:n], lp0[:n]
    accept = [a > -INF and a >= b + math.log(lam) for a, b in zip(llm_n, lp0_n, strict=True)]
    reject = [a == -INF for a in lp_llm[:n]]
    decided = next((i for i in range(n) if not accept[i]), n)
    if decided == n or reject[decided]:
        assert greedy == decided
        assert sampled == [decided] * len(SEEDS)


@given(row=ROW, temperature=st.sampled_from([1e-45, 1e-40, 1e-31, 1e-20, 1e-3, 1.0, 7.0]))
@settings(max_examples=300, deadline=None)
def test_log_probs_at_any_temperature_are_a_distribution(
    row: list[float], temperature: float
) -> None:
    logits = torch.tensor(row, dtype=torch.float32)
    out = fusion.log_probs(logits, temperature)
    assert not torch.isnan(out).any()
    assert torch.isneginf(out[torch.isneginf(logits)]).all()
    if not finite_indices(row):
        assert torch.isneginf(out).all()
        return
    assert math.isclose(float(out.double().exp().sum()), 1.0, rel_tol=1e-4)
    assert bool(out[int(logits.argmax())] == out.max())  # the order is kept (ties may merge)
