"""The one ratio test every verifier calls: its dispatch on target and greedy, hand-built."""

from __future__ import annotations

import math

import pytest
import torch

from specsteer import fusion
from specsteer.cloud_adapter import VerifyParams


def lp(*probs: float) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64))


# P_L(d) = 0.3 and P_S0(d) = 0.5 on every token: lam = 0.5 accepts (0.3 >= 0.25), lam = 1 does
# not (0.3 < 0.5); the argmax test looks at neither.
LP_LLM, LP_CTXFREE = lp(0.3, 0.3, 0.3), lp(0.5, 0.5, 0.5)
MATCHES = torch.tensor([True, False, True])


@pytest.mark.parametrize(
    ("target", "greedy", "expected"),
    [
        ("fused", True, 3),  # SpecSteer at lam = 0.5: every token passes
        ("llm", True, 1),  # greedy speculative: stops at the first non-argmax token
    ],
)
def test_greedy_dispatch(target: str, greedy: bool, expected: int) -> None:
    got = fusion.ratio_test(
        LP_LLM, LP_CTXFREE, lam=0.5, greedy=greedy, target=target, argmax_matches=MATCHES
    )
    assert got == expected


def test_sampled_speculative_uses_lam_one() -> None:
    """target='llm' sampled: the test at lam = 1 whatever lam says, with the same draws."""
    for seed in range(30):
        got = fusion.ratio_test(
            LP_LLM,
            LP_CTXFREE,
            lam=0.01,
            greedy=False,
            target="llm",
            argmax_matches=torch.tensor([True, True, True]),
            generator=torch.Generator().manual_seed(seed),
        )
        want = fusion.verify_draft(
            LP_LLM, LP_CTXFREE, 1.0, False, torch.Generator().manual_seed(seed)
        )
        assert got == want
    # lam = 0.01 would accept all three every time; at lam = 1 some seeds reject.
    assert any(
        fusion.ratio_test(
            LP_LLM,
            LP_CTXFREE,
            lam=0.01,
            greedy=False,
            target="llm",
            generator=torch.Generator().manual_seed(s),
        )
        < 3
        for s in range(30)
    )


def test_argmax_test_needs_no_ctxfree() -> None:
    assert fusion.uses_argmax("llm", True)
    assert not fusion.uses_argmax("llm", False) and not fusion.uses_argmax("fused", True)
    got = fusion.ratio_test(
        LP_LLM, None, lam=0.5, greedy=True, target="llm", argmax_matches=MATCHES
    )
    assert got == 1


def test_units_count_lam_once_per_device_token() -> None:
    """A segment of two device tokens is judged against lam**2 * P_S0 (its summed scores)."""
    lp_seg, lp0_seg = lp(0.09), lp(0.25)  # P_L = 0.09; P_S0 of the two units together 0.25
    at = {
        units: fusion.ratio_test(lp_seg, lp0_seg, lam=0.5, greedy=True, units=[units])
        for units in (1, 2)
    }
    assert at == {1: 0, 2: 1}  # 0.09 < 0.5 * 0.25, but 0.09 >= 0.25 * 0.25


def test_limits_of_lam() -> None:
    assert fusion.ratio_test(lp(1e-6), lp(0.99), lam=0.0, greedy=True) == 1
    assert fusion.ratio_test(lp(0.99), lp(1e-6), lam=math.inf, greedy=True) == 0
    empty = torch.zeros(0, dtype=torch.float64)  # token-level fusion drafts nothing
    assert fusion.ratio_test(empty, None, lam=0.5, greedy=False) == 0
    with pytest.raises(ValueError, match="target"):
        fusion.ratio_test(LP_LLM, LP_CTXFREE, lam=0.5, greedy=True, target="other")


def test_params_bind_their_seed() -> None:
    params = VerifyParams(lam=0.5, greedy=False, seed=5)
    direct = fusion.ratio_test(
        LP_LLM, LP_CTXFREE, lam=0.5, greedy=False, generator=torch.Generator().manual_seed(5)
    )
    scored = fusion.Scored(LP_LLM, MATCHES, top_k=lambda n: n)
    assert params.judge(scored, LP_CTXFREE) == fusion.Verdict(direct, direct)
    assert params.judge(scored, LP_CTXFREE).n_accepted == direct  # a fresh generator per call
    assert VerifyParams(target="llm", greedy=True).uses_argmax
