"""Greedy standard speculative decoding judges drafts against the cloud's *processed* argmax, the
distribution its recovery and ``cloud_only`` use, so it reproduces processed greedy decoding."""

from __future__ import annotations

import torch

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer.cloud_adapter import InProcessVerifier
from specsteer.testing import BigramBackend

WORDS = ["<s>", "<end>", "a", "b", "c", "d"]
S, END, A, B, C, D = range(6)


def table(after_b: dict[int, float]) -> torch.Tensor:
    """``<s> a b ? d <end>``: every row has one clear winner but the row after ``b``."""
    t = torch.full((6, 6), -10.0)
    t[S, A] = t[A, B] = t[C, D] = t[D, END] = 5.0
    for tok, logit in after_b.items():
        t[B, tok] = logit
    return t


# After "a b", the cloud's raw logits favour "a" (3.0) over "c" (2.0); "a" is already in the
# answer, so a repetition penalty of 2 halves it to 1.5 and "c" is the processed argmax. The
# drafter likes "a" so much (10.0, still 5.0 after the penalty) that it drafts "a" anyway.
CLOUD = BigramBackend(table({A: 3.0, C: 2.0}), WORDS, name="cloud")
DRAFTER = BigramBackend(table({A: 10.0, C: 0.0}), WORDS, name="drafter")


def run(method: str) -> list[int]:
    cfg = GenerationConfig(
        method=method, greedy=True, repetition_penalty=2.0, max_new_tokens=8, draft_tokens=4
    )
    result = Decoder(DRAFTER, InProcessVerifier(CLOUD), wire="ids").generate(
        build_prompt("q", ""), cfg
    )
    return list(result.token_ids)


def test_greedy_speculative_equals_processed_greedy_cloud_only() -> None:
    cloud_only = run("cloud_only")
    assert cloud_only == [A, B, C, D, END]  # the processed argmax after "a b" is "c"
    assert run("speculative") == cloud_only
