"""The analytical speed bound the benchmark compares each method with: its limits and closed
forms, checked by hand."""

from __future__ import annotations

import pytest

from specsteer._bench_bound import (
    Curve,
    Line,
    PassCosts,
    alpha_from_acceptance,
    expected_accepted,
    expected_tokens,
    fit_line,
    method_bound,
    projected,
    projected_speedup,
    round_ms,
)


def test_a_line_is_fitted_through_pass_costs() -> None:
    line = fit_line([(1, 50.0), (3, 90.0), (5, 130.0), (13, 290.0)])
    assert (line.a, line.b) == pytest.approx((30.0, 20.0))
    assert line(5) == pytest.approx(130.0) and str(line) == "30.0 + 20.0n ms"
    assert str(Line(5.0, -0.25)) == "5.0 - 0.2n ms"
    assert fit_line([(4, 10.0), (4, 14.0)]) == Line(12.0, 0.0)  # one length: flat
    with pytest.raises(ValueError):
        fit_line([])


# The 0.5B on llama.cpp, one thread: a pass of one token runs another kernel than a pass of
# several, so no line fits (a least-squares line puts one token at 37 + 11 = 48 ms, not 18).
LLAMA_CPP_05B = Curve(((1, 18.4), (2, 65.3), (3, 82.2), (5, 123.0), (8, 121.3), (13, 177.0)))


def test_a_curve_joins_the_measured_pass_costs() -> None:
    curve = LLAMA_CPP_05B
    assert curve(1) == 18.4 and curve(5) == 123.0  # measured lengths are kept as measured
    assert curve(4) == pytest.approx((82.2 + 123.0) / 2)  # between them, a straight line
    assert curve(0.5) == 18.4  # below the shortest: its cost
    slope = fit_line(curve.points).b
    assert curve(15) == pytest.approx(177.0 + 2 * slope)  # beyond: the fitted slope goes on
    assert Curve(((1, 10.0), (2, 5.0)))(4) == 5.0  # never cheaper with more tokens beyond
    assert fit_line(curve.points)(1) > 2 * curve(1)  # what the line got wrong
    assert curve.scaled(0.5)(3) == pytest.approx(41.1)
    assert str(Curve(((1, 18.44), (2, 65.3)))) == "18.4, 65.3 ms for 1, 2 tokens"
    for bad in ((), ((2, 1.0), (1, 2.0)), ((1, 1.0), (1, 2.0))):
        with pytest.raises(ValueError):
            Curve(bad)


def test_the_device_alone_is_bounded_by_its_one_token_pass_on_a_curve() -> None:
    costs = PassCosts(device=LLAMA_CPP_05B, cloud=Curve(((1, 35.2), (5, 156.6), (13, 296.5))))
    assert method_bound("device", costs, 0).tokens_per_second == pytest.approx(1000 / 18.4)
    assert costs.cost_ratio == pytest.approx(18.4 / 35.2)
    regime = projected(costs, 1 / 20)
    assert regime.device(5) / regime.device(1) == pytest.approx(123.0 / 18.4)


def test_leviathans_expected_tokens_per_round() -> None:
    assert expected_tokens(0.0, 4) == 1.0  # every first draft rejected: the device's token
    assert expected_tokens(1.0, 4) == 5.0  # all pass, and the bonus token
    assert expected_tokens(0.8, 4) == pytest.approx(1 + 0.8 + 0.64 + 0.512 + 0.4096)
    assert expected_accepted(0.8, 4) == pytest.approx(0.8 + 0.64 + 0.512 + 0.4096)
    assert expected_tokens(0.5, 0) == 1.0  # token fusion: no draft, one token per round


@pytest.mark.parametrize("alpha", [0.05, 0.43, 0.7, 0.93])
def test_alpha_is_recovered_from_the_measured_acceptance(alpha: float) -> None:
    drafts = [4, 6, 8, 3, 12, 4]
    accepted = sum(expected_accepted(alpha, k) for k in drafts)
    assert alpha_from_acceptance(accepted, drafts) == pytest.approx(alpha, abs=1e-9)
    # More accepted tokens mean a larger alpha.
    assert alpha_from_acceptance(accepted + 1, drafts) > alpha
    assert alpha_from_acceptance(0, drafts) == pytest.approx(0.0, abs=1e-9)
    assert alpha_from_acceptance(sum(drafts), drafts) == 1.0


def test_a_round_costs_the_longer_side_when_drafted_ahead_else_both() -> None:
    assert round_ms(30.0, 100.0, 1.0) == 100.0
    assert round_ms(30.0, 100.0, 0.0) == 130.0
    assert round_ms(30.0, 100.0, 0.25) == pytest.approx(0.25 * 100 + 0.75 * 130)
    # After a round that passed whole the device passes over its last draft token too.
    assert round_ms(90.0, 100.0, 1.0, bonus_ms=20.0) == 110.0
    assert round_ms(90.0, 100.0, 1.0, bonus_ms=20.0, pipelined=False) == 210.0
    assert round_ms(90.0, 100.0, 0.0, bonus_ms=20.0) == 190.0
    # A guess of the token after the draft that missed: the device drafts again in turn.
    assert round_ms(90.0, 100.0, 1.0, bonus_ms=20.0, p_held=0.0) == 210.0
    held = round_ms(90.0, 100.0, 0.5, bonus_ms=20.0, p_held=0.75)
    assert held == pytest.approx(0.5 * (0.75 * 110 + 0.25 * 210) + 0.5 * 190)


COSTS = PassCosts(device=Line(20.0, 7.0), cloud=Line(30.0, 11.0))  # ms for a pass of n tokens


def test_baselines_are_bounded_by_their_own_pass() -> None:
    assert COSTS.cost_ratio == pytest.approx(27 / 41)
    assert method_bound("device", COSTS, 20).tokens_per_second == pytest.approx(1000 / 27)
    assert method_bound("cloud", COSTS, 20).tokens_per_second == pytest.approx(1000 / 41)
    fusion = method_bound("rounds", COSTS, 20, drafts=[0, 0, 0])
    assert fusion.tokens_per_second == pytest.approx(1000 / (41 + 20)) and fusion.alpha is None


def test_rounds_that_all_pass_cost_the_cloud_side_alone() -> None:
    bound = method_bound("rounds", COSTS, 0, drafts=[4, 4], accepted=8)
    device = 4 * 27 + (20 + 7 * 5)  # four drafted tokens and the context-free block of five
    cloud = 30 + 11 * 5
    assert bound.alpha == 1.0 and bound.tokens_per_round == 5
    bonus = 27  # the pass over the last draft token, for the token after it
    assert bound.round_ms == pytest.approx(max(device + bonus, cloud))
    assert bound.tokens_per_second == pytest.approx(5000 / max(device + bonus, cloud))
    sequential = method_bound("rounds", COSTS, 0, drafts=[4, 4], accepted=8, pipelined=False)
    assert sequential.round_ms == pytest.approx(device + bonus + cloud)
    # Guesses that all missed cost what the sequential loop costs; a measured share in between.
    missed = method_bound("rounds", COSTS, 0, drafts=[4, 4], accepted=8, guess_held=0.0)
    assert missed.round_ms == pytest.approx(sequential.round_ms)
    half = method_bound("rounds", COSTS, 0, drafts=[4, 4], accepted=8, guess_held=0.5)
    assert half.round_ms == pytest.approx((bound.round_ms + sequential.round_ms) / 2)


def test_a_draft_judged_on_the_device_is_scored_beside_the_clouds_pass() -> None:
    """The context-free block runs after the draft left: a rejected round costs the drafting
    and the longer of the block and the cloud's side; a round drafted ahead is unchanged."""
    score, cloud = 20 + 7 * 5, 30 + 11 * 5 + 20
    here = method_bound("rounds", COSTS, 20, drafts=[4], accepted=0, scores_beside=True)
    there = method_bound("rounds", COSTS, 20, drafts=[4], accepted=0)
    assert here.round_ms == pytest.approx(4 * 27 + max(score, cloud))
    assert there.round_ms == pytest.approx(4 * 27 + score + cloud)
    assert round_ms(90.0, 100.0, 0.0, beside_ms=120.0) == 210.0  # the block is the longer side
    whole = dict(drafts=[4, 4], accepted=8)
    assert method_bound("rounds", COSTS, 0, **whole, scores_beside=True).round_ms == (
        pytest.approx(method_bound("rounds", COSTS, 0, **whole).round_ms)
    )
    missed = method_bound("rounds", COSTS, 0, **whole, scores_beside=True, guess_held=0.0)
    assert missed.round_ms == pytest.approx(4 * 27 + 27 + max(score, 30 + 11 * 5))
    # It needs a device that scores the draft, and a draft that leaves before the scoring.
    for kw in ({"scores_draft": False}, {"pipelined": False}):
        off = method_bound("rounds", COSTS, 20, drafts=[4], accepted=0, **kw)
        assert method_bound(
            "rounds", COSTS, 20, drafts=[4], accepted=0, scores_beside=True, **kw
        ).round_ms == pytest.approx(off.round_ms)


def test_a_context_free_drafter_needs_no_scoring_block() -> None:
    spec = method_bound("rounds", COSTS, 20, drafts=[4], accepted=0, scores_draft=False)
    steer = method_bound("rounds", COSTS, 20, drafts=[4], accepted=0)
    assert spec.round_ms == pytest.approx(4 * 27 + 30 + 11 * 5 + 20)
    assert steer.round_ms - spec.round_ms == pytest.approx(20 + 7 * 5)


def test_the_papers_regime_the_bound_projects() -> None:
    """A cloud 20x the device's cost per token, flat in block length (a GPU's): at the
    acceptance SpecSteer reaches at lam=0.1 here, speculation pays by about 2.5x."""
    gpu = PassCosts(device=Line(0.0, 1.0), cloud=Line(20.0, 0.0))
    alpha = 0.8
    accepted = round(100 * expected_accepted(alpha, 4))
    bound = method_bound("rounds", gpu, 0, drafts=[4] * 100, accepted=accepted, pipelined=False)
    cloud = method_bound("cloud", gpu, 0)
    speedup = bound.tokens_per_second / cloud.tokens_per_second
    full = alpha**4  # a round that passed whole: one more device pass
    per_round = full * ((5 + 5) / 20 + 1) + (1 - full) * ((4 + 5) / 20 + 1)
    assert speedup == pytest.approx(expected_tokens(alpha, 4) / per_round, rel=0.01)
    assert 2.2 < speedup < 2.4


def test_the_projection_keeps_the_device_shape_and_flattens_the_cloud() -> None:
    regime = projected(COSTS, 1 / 20)
    assert regime.cloud == Line(1.0, 0.0)
    assert regime.device(1) == pytest.approx(1 / 20)
    assert regime.device(5) / regime.device(1) == pytest.approx(COSTS.device(5) / COSTS.device(1))
    drafts = [4] * 10
    accepted = 10 * expected_accepted(0.8, 4)
    fast = projected_speedup(COSTS, 1 / 50, drafts=drafts, accepted=accepted, pipelined=True)
    slow = projected_speedup(COSTS, 1 / 20, drafts=drafts, accepted=accepted, pipelined=True)
    seq = projected_speedup(COSTS, 1 / 20, drafts=drafts, accepted=accepted, pipelined=False)
    assert expected_tokens(0.8, 4) > fast > slow > seq > 1
