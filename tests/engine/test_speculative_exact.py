"""Sampled standard speculative decoding restores the cloud's distribution exactly: the cloud
sends draws of its whole distribution, and the device's correction is sampled from them by
rejection, not from the top-k."""

from __future__ import annotations

import math

import pytest
import torch

from specsteer import Decoder, GenerationConfig, build_prompt, fusion
from specsteer.cloud_adapter import ForwardingVerifier, InProcessVerifier, VerifyRequest
from specsteer.testing import BigramBackend

#: [8] a target P_L with mass spread past a top-2, and a drafter P_S0 that disagrees with it.
P_L = torch.tensor([0.30, 0.22, 0.16, 0.12, 0.08, 0.06, 0.04, 0.02], dtype=torch.float64)
P_S0 = torch.tensor([0.05, 0.40, 0.05, 0.30, 0.05, 0.05, 0.05, 0.05], dtype=torch.float64)


def _chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """The p-value of Pearson's chi-square test of ``counts`` against ``probs``."""
    expected = probs / probs.sum() * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    df = counts.numel() - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))


def _one_position(gen: torch.Generator, top_k: int | None) -> int:
    """One speculative step: draft from P_S0, the cloud's ratio test, then the correction, from
    the cloud's draws (``top_k=None``) or over its top-k as a cloud without draws gives it."""
    lp_l, lp_0 = P_L.log(), P_S0.log()
    d = int(torch.multinomial(P_S0, 1, generator=gen))
    ok = fusion.verify_draft(lp_l[[d]], lp_0[[d]], 1.0, greedy=False, generator=gen)
    if ok:
        return d
    if top_k is not None:
        values, ids = torch.topk(lp_l, top_k)
        return int(ids[fusion.recover_residual_index(values, lp_0[ids], False, gen)])
    while True:
        ids, lps = fusion.draw_samples(lp_l, 32, gen)
        kept = fusion.residual_from_samples(ids, torch.tensor(lps), lp_0[ids], gen)
        if kept is not None:
            return ids[kept]


@pytest.mark.parametrize(("top_k", "exact"), [(None, True), (2, False)])
def test_the_correction_from_draws_restores_the_target(top_k: int | None, exact: bool) -> None:
    """20,000 steps against the closed form: exact with draws; a top-2 correction is not."""
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(8, dtype=torch.float64)
    for _ in range(20_000):
        counts[_one_position(gen, top_k)] += 1
    p = _chi_square_p(counts, P_L)
    assert (p > 1e-3) if exact else (p < 1e-6), p


WORDS = ["<s>", "<end>", "a", "b", "c", "d", "e", "f"]


def _bigram(row: torch.Tensor, name: str) -> BigramBackend:
    """Every token is followed by ``row`` (log-probabilities over the 8 words)."""
    table = row.log().float().unsqueeze(0).repeat(8, 1)
    return BigramBackend(table, WORDS, name=name)


class _Counting(ForwardingVerifier):
    def __init__(self, inner: InProcessVerifier) -> None:
        super().__init__(inner)
        self.asked: list[int] = []

    def transmit(self, request: VerifyRequest, wire: bytes):  # type: ignore[no-untyped-def]
        self.asked.append(request.params.samples)
        return super().transmit(request, wire)


def test_the_engines_first_token_follows_the_clouds_distribution() -> None:
    """Through the engine and the reference verifier: the first token of sampled speculative
    decoding is distributed as the cloud model's own first token (with the end token ruled out
    on both sides, a plain 6-word distribution)."""
    target = torch.tensor([1e-9, 1e-9, 0.30, 0.25, 0.20, 0.12, 0.08, 0.05], dtype=torch.float64)
    drafter = torch.tensor([1e-9, 1e-9, 0.05, 0.50, 0.05, 0.30, 0.05, 0.05], dtype=torch.float64)
    device, cloud = _bigram(drafter, "drafter"), _bigram(target, "cloud")
    counts = torch.zeros(8, dtype=torch.float64)
    verifier = _Counting(InProcessVerifier(cloud))
    decoder = Decoder(device, verifier, wire="ids")
    prompt = build_prompt("q", "")
    for seed in range(3000):
        cfg = GenerationConfig(
            method="speculative",
            greedy=False,
            seed=seed,
            max_new_tokens=1,
            draft_tokens=1,
            adaptive_draft=False,
            top_k=2,
            ignore_eos=True,
            pipeline=False,
        )
        counts[decoder.generate(prompt, cfg).token_ids[0]] += 1
    assert set(verifier.asked) == {32}  # each sampled request asks for draws
    expect = target[2:] / target[2:].sum()
    assert _chi_square_p(counts[2:], expect) > 1e-3
    assert math.isclose(float(counts.sum()), 3000)
