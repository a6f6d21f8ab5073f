"""Edges of the round: drafts the public side rules out, and other values at the extremes."""

from __future__ import annotations

import functools

import pytest

from specsteer import Decoder, GenerationConfig, PrivateEgress, Round, build_prompt
from specsteer.cloud_adapter import InProcessVerifier
from specsteer.privacy import EgressPolicy
from specsteer.testing import tiny_backend

PROMPT = build_prompt("what is my plan for friday ?", "dinner in rome with my sister")


@functools.cache
def _private_texts() -> tuple[str, ...]:
    """What the device writes on its own: private text its drafts will repeat."""
    device = tiny_backend(0)
    cfg = GenerationConfig(method="device_only", max_new_tokens=40, greedy=False)
    return tuple(
        Decoder(device, None).generate(PROMPT, cfg.model_copy(update={"seed": s})).text
        for s in range(8)
    )


@pytest.mark.parametrize("seed", [1, 3, 4, 7])
def test_a_draft_token_the_public_side_rules_out_ends_the_draft(seed: int) -> None:
    """Kept spans read as placeholders on the public side; with ``no_repeat_ngram_size`` a
    placeholder's token is then ruled out there (log P_S0 = -inf), though the private drafter may
    write it. Such a draft cannot travel (the wire carries finite log-probabilities): it ends
    before that token, and the device recovers there."""
    device, llm = tiny_backend(0), tiny_backend(1)
    egress = PrivateEgress(policy=EgressPolicy(overlap_n=2, overlap_min_short=2))
    egress.begin(_private_texts())
    cfg = GenerationConfig(max_new_tokens=64, no_repeat_ngram_size=1, seed=seed, greedy=False)
    events = list(Decoder(device, InProcessVerifier(llm), egress=egress).stream(PROMPT, cfg))
    result = events[-1].result  # type: ignore[union-attr]
    assert result.stats.fallback is None
    assert any(isinstance(e, Round) and e.local for e in events)  # the public view diverged
    assert result.stats.new_tokens == 64 or result.finish_reason == "eos"
