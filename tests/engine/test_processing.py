"""Logit processing (repetition penalty, no-repeat n-grams, top-p) in the fusion math and the
engine: hand-built logits with exact results, then the paper's limits again with processing on."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from specsteer import Decoder, GenerationConfig, build_prompt, fusion
from specsteer.cloud_adapter import InProcessVerifier, VerifyParams

QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"
PROCESSING = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}


def test_no_processing_is_plain_log_softmax() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    got = fusion.processed_log_probs(logits, [0, 1], fusion.Processing(), [2])
    assert torch.equal(got, fusion.log_probs(logits))


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, 1.0])
    proc = fusion.Processing(repetition_penalty=2.0)
    got = fusion.processed_log_probs(logits, [0, 1, 0], proc)
    assert torch.allclose(got, torch.log_softmax(torch.tensor([1.0, -2.0, 0.5, 1.0]), -1))


@pytest.mark.parametrize(
    ("history", "n", "banned"),
    [
        ([5, 6, 7, 5, 6], 3, [7]),  # "5 6" was followed by 7
        ([5, 6, 7, 5, 6], 2, [7]),  # "6" was followed by 7
        ([5, 6, 7, 5, 8], 3, []),  # near miss: "5 8" never occurred before
        ([1, 2, 1, 3, 1], 2, [2, 3]),  # "1" was followed by 2 and by 3
        ([4, 4], 1, [4]),  # unigrams: every seen token
        ([4], 2, []),  # shorter than n-1 + 1 tokens: nothing to repeat
    ],
)
def test_no_repeat_ngram_bans_exactly_the_repeating_tokens(
    history: list[int], n: int, banned: list[int]
) -> None:
    proc = fusion.Processing(no_repeat_ngram_size=n)
    got = fusion.processed_log_probs(torch.zeros(10), history, proc)
    assert torch.isneginf(got).nonzero().flatten().tolist() == banned


def test_block_rows_follow_answer_plus_the_block_so_far() -> None:
    """Row i of a block pass is processed with answer + block[:i] as history."""
    proc = fusion.Processing(repetition_penalty=1.5, no_repeat_ngram_size=2)
    rows = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    answer, block = [3, 4, 3], [4, 9]
    got = fusion.processed_log_probs(rows, answer, proc, block)
    for i in range(3):
        one = fusion.processed_log_probs(rows[i], answer + block[:i], proc)
        assert torch.equal(got[i], one)
    assert torch.isneginf(got[0, 4])  # "3" was followed by 4
    assert not torch.isneginf(got[1, 4])  # after "4" comes 3 (banned) but 4 is free
    assert torch.isneginf(got[1, 3])


@pytest.mark.parametrize(
    ("top_p", "kept"), [(1.0, [0, 1, 2]), (0.6, [0, 1]), (0.5, [0]), (0.95, [0, 1, 2]), (0.01, [0])]
)
def test_top_p_keeps_the_smallest_nucleus(top_p: float, kept: list[int]) -> None:
    scores = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    got = fusion.top_p_filter(scores, top_p)
    assert torch.isfinite(got).nonzero().flatten().tolist() == kept


def test_top_p_draws_never_leave_the_nucleus() -> None:
    scores = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    gen = torch.Generator().manual_seed(1)
    draws = {fusion.sample_or_argmax(scores, False, gen, top_p=0.7) for _ in range(2000)}
    assert draws == {0, 1}


def test_fused_scores_rule_out_candidates_banned_on_either_side() -> None:
    lp_l = torch.tensor([-1.0, -2.0, -3.0, -math.inf])
    lp_s = torch.tensor([-math.inf, -1.0, -2.0, -1.0])
    lp_s0 = torch.tensor([-math.inf, -1.5, -math.inf, -1.0])
    scores = fusion.fused_scores(lp_l, lp_s, lp_s0, 1.0)
    assert not torch.isnan(scores).any()
    assert torch.isneginf(scores).tolist() == [True, False, True, True]
    assert scores[1] == pytest.approx(-1.5)


def test_recovery_falls_back_to_the_cloud_when_the_device_rules_out_everything() -> None:
    lp_l = torch.tensor([-0.5, -1.0])
    banned = torch.full((2,), -math.inf)
    assert fusion.recover_index(lp_l, banned, banned, 1.0, greedy=True) == 0


def test_processing_params_travel_and_are_validated() -> None:
    params = VerifyParams(repetition_penalty=1.2, no_repeat_ngram_size=3)
    assert params.processing == fusion.Processing(1.0, 1.2, 3)
    with pytest.raises(ValueError):
        VerifyParams(repetition_penalty=0.5)
    with pytest.raises(ValueError):
        VerifyParams(no_repeat_ngram_size=-1)


# -- the limits again, with processing on --------------------------------------------------------


def generate(device, cloud, method="specsteer", context=CONTEXT, **kw):
    cfg = GenerationConfig(method=method, **{"max_new_tokens": 24, **PROCESSING, **kw})
    return Decoder(device, cloud).generate(build_prompt(QUERY, context), cfg)


def processed_greedy(backend, messages, n: int) -> list[int]:
    """Reference: full re-encode each step, processing over the answer, argmax."""
    ids = backend.encode_chat(messages)
    proc = fusion.Processing(**PROCESSING)
    out: list[int] = []
    for _ in range(n):
        logits, _ = backend.forward(ids + out, None)
        out.append(int(torch.argmax(fusion.processed_log_probs(logits[-1], out, proc))))
        if out[-1] in backend.eos_token_ids:
            break
    return out


def test_processing_changes_the_answer(slm) -> None:
    plain = Decoder(slm, None).generate(
        build_prompt(QUERY, CONTEXT), GenerationConfig(method="device_only", max_new_tokens=24)
    )
    processed = generate(slm, None, method="device_only")
    assert plain.token_ids != processed.token_ids


def test_processed_identical_models_equal_processed_greedy(slm, slm_copy) -> None:
    result = generate(slm, InProcessVerifier(slm_copy), context="", max_new_tokens=30)
    prompt = build_prompt(QUERY, "")
    assert list(result.token_ids) == processed_greedy(slm, prompt.public_dicts(), 30)
    assert result.stats.accepted_tokens == result.stats.drafted_tokens > 0


def test_processed_lam_zero_without_bonus_equals_device_only(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), lam=0.0, bonus_token=False)
    device = generate(slm, None, method="device_only")
    assert spec.token_ids == device.token_ids
    assert spec.stats.acceptance_rate == 1.0


def test_processed_lam_infinite_equals_token_fusion(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), lam=1e30)
    fused = generate(slm, InProcessVerifier(llm), method="token_fusion")
    assert spec.token_ids == fused.token_ids
    assert spec.stats.accepted_tokens == 0


def test_processed_speculative_greedy_is_lossless(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), method="speculative", max_new_tokens=30)
    cloud = generate(slm, InProcessVerifier(llm), method="cloud_only", max_new_tokens=30)
    assert spec.token_ids == cloud.token_ids
    prompt = build_prompt(QUERY, CONTEXT)
    assert list(cloud.token_ids) == processed_greedy(llm, prompt.public_dicts(), 30)


def test_no_repeat_ngram_holds_in_every_method(slm, llm) -> None:
    for method in ("specsteer", "token_fusion", "speculative", "device_only", "cloud_only"):
        ids = list(
            generate(slm, InProcessVerifier(llm), method=method, max_new_tokens=40).token_ids
        )
        pairs = list(itertools.pairwise(ids))
        assert len(pairs) == len(set(pairs)), method


def test_sampled_with_top_p_is_reproducible(slm, llm) -> None:
    kw = {"greedy": False, "seed": 11, "top_p": 0.8, "temperature": 0.9}
    a = generate(slm, InProcessVerifier(llm), **kw)
    b = generate(slm, InProcessVerifier(llm), **kw)
    assert a.token_ids == b.token_ids
