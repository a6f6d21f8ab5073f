"""The judged bonus: after a draft that passed whole, the device's own next token stands when the
cloud's ratio test passes it at the bonus position too; otherwise the recovery writes the bonus."""

from __future__ import annotations

import math

import pytest
import torch

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer._recover import guess_passes
from specsteer._rounds import Draft, LazyRow
from specsteer._wire import Candidates, WireDraft
from specsteer.cloud_adapter import InProcessVerifier, TokenIds

V = 6
QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"


def _draft(log_p0_of_guess: float, guess: int = 3) -> Draft:
    """A one-token draft whose context-free bonus row gives ``guess`` ``log_p0_of_guess``."""
    rows = torch.full((1, V), -math.log(V), dtype=torch.float64)
    bonus0 = torch.full((V,), -30.0, dtype=torch.float64)
    bonus0[guess] = log_p0_of_guess
    ctxfree = torch.stack([rows[0], bonus0])  # [2, V]: the draft token's row and the bonus row
    wire = WireDraft([1], TokenIds(ids=[]), TokenIds(ids=[1]))
    return Draft(
        [], [], wire, rows, [rows[0, 1].item()], LazyRow(lambda: rows[0]), ctxfree.__getitem__
    )


def _cands(ranked: dict[int, float]) -> Candidates:
    ids = list(ranked)
    return Candidates(
        torch.tensor(ids, dtype=torch.long),
        torch.tensor(list(ranked.values()), dtype=torch.float64),
        [[t] for t in ids],
    )


@pytest.mark.parametrize(
    ("log_p_l", "log_p0", "lam", "passes"),
    [
        (math.log(0.05), math.log(0.4), 0.1, True),  # 0.05 >= 0.1 * 0.4
        (math.log(0.03), math.log(0.4), 0.1, False),  # 0.03 < 0.1 * 0.4
        (math.log(0.2), math.log(0.4), 0.5, True),  # on the line: the test accepts ties
        (math.log(0.19), math.log(0.4), 0.5, False),
    ],
)
def test_the_guess_passes_by_the_ratio_test(log_p_l, log_p0, lam, passes) -> None:
    gen = torch.Generator().manual_seed(0)
    draft = _draft(log_p0)
    assert guess_passes(draft, 3, _cands({2: -0.1, 3: log_p_l}), lam, True, gen) is passes


def test_a_guess_the_cloud_does_not_rank_does_not_pass() -> None:
    """Its P_L is unknown, so it is not taken, however likely the device finds it."""
    gen = torch.Generator().manual_seed(0)
    assert not guess_passes(_draft(math.log(1e-9)), 3, _cands({2: -0.1, 4: -3.0}), 0.1, True, gen)


def _generate(device, cloud, method: str = "specsteer", **kw):  # type: ignore[no-untyped-def]
    cfg = GenerationConfig(method=method, **{"max_new_tokens": 24, **kw})
    return Decoder(device, cloud).generate(build_prompt(QUERY, CONTEXT), cfg)


@pytest.mark.parametrize("greedy", [True, False])
def test_at_lam_zero_the_judged_bonus_writes_what_the_device_alone_writes(slm, llm, greedy) -> None:
    """At lam = 0 every draft token passes, and so does each guess the cloud ranks (top_k spans the
    whole vocabulary here): SpecSteer writes the device's own answer, bonus tokens included."""
    kw = {"lam": 0.0, "top_k": slm.vocab_size, "greedy": greedy, "seed": 7, "judged_bonus": True}
    spec = _generate(slm, InProcessVerifier(llm), **kw)
    device = _generate(slm, None, "device_only", greedy=greedy, seed=7)
    assert spec.token_ids == device.token_ids
    assert any(r.recovered for r in spec.stats.rounds)  # bonus tokens were taken


def test_without_the_judged_bonus_the_recovery_steers_every_bonus(slm, llm) -> None:
    """The paper's rule (``judged_bonus=False``, the default) steers the bonus from the cloud's
    candidates, so at lam = 0 the answer leaves the device's own."""
    kw = {"lam": 0.0, "top_k": slm.vocab_size}
    judged = _generate(slm, InProcessVerifier(llm), judged_bonus=True, **kw)
    steered = _generate(slm, InProcessVerifier(llm), **kw)
    assert steered.token_ids != judged.token_ids
