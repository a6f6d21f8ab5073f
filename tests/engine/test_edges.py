"""Edges of the round: drafts the public side rules out, and other values at the extremes."""

from __future__ import annotations

import functools

import pytest

from specsteer import Decoder, GenerationConfig, PrivateEgress, Round, build_prompt
from specsteer.cloud_adapter import (
    CloudVerifier,
    InProcessVerifier,
    Text,
    TopK,
    VerifyRequest,
    VerifyResponse,
)
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


class _RejectsAndRepeats(CloudVerifier):
    """A text-mode cloud that rejects each draft at its first unit and offers that unit's own
    text back: the recovery writes the draft's first word, and what followed it was judged with
    it (as a segment of several units is)."""

    def __init__(self) -> None:
        self.drafts: list[str] = []

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        assert isinstance(request.draft, Text)
        self.drafts.append(request.draft.text)
        first = request.draft.text[: request.draft.offsets[0]] if request.draft.offsets else " the"
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=0,
            top_k=TopK(strings=[first], logprobs=[-0.1]),
        )


def test_a_text_mode_redraft_draws_what_the_rejection_judged_afresh() -> None:
    """After a rejection, the positions the cloud judged past the recovery are drawn with new
    seeds: the next draft is not the rejected draft's tail drawn again from the same seeds."""
    cloud = _RejectsAndRepeats()
    cfg = GenerationConfig(
        greedy=False, seed=2, max_new_tokens=12, draft_tokens=4, adaptive_draft=False
    )
    Decoder(tiny_backend(0), cloud, wire="text").generate(PROMPT, cfg)
    pairs = list(zip(cloud.drafts, cloud.drafts[1:], strict=False))
    assert len(pairs) >= 6
    repeats = 0
    for before, after in pairs:
        rest = before.split()[1:]  # the tail after the word the recovery wrote again
        repeats += bool(rest) and after.split()[: len(rest)] == rest
    assert repeats <= len(pairs) // 3, cloud.drafts
