"""The round loop: pipelined drafting gives the sequential loop's tokens, adaptive K follows its
rule, and text decoding by new tokens only equals decoding the whole answer."""

from __future__ import annotations

import dataclasses
import functools
import random

import pytest

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer._answer import Answer
from specsteer._drafter import ruled_out
from specsteer._rounds import Drafting, DraftSchedule, Guess
from specsteer._wire import IncrementalText
from specsteer.backends import ModelBackend
from specsteer.cloud_adapter import (
    CloudVerifier,
    InProcessVerifier,
    Text,
    TopK,
    VerifyRequest,
    VerifyResponse,
)
from specsteer.testing import tiny_backend

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")


@functools.cache
def _pair(family: str = "words"):  # type: ignore[no-untyped-def]
    return tiny_backend(0), tiny_backend(1, family=family)


@functools.cache
def _twins():  # type: ignore[no-untyped-def]
    """Two instances with the same weights: every draft passes."""
    return tiny_backend(0), tiny_backend(0)


@pytest.mark.parametrize(
    ("method", "greedy", "family", "lam"),
    [
        ("specsteer", True, "words", 0.5),
        ("specsteer", False, "words", 0.02),
        ("specsteer", True, "pieces", 0.02),
        ("specsteer", False, "pieces", 0.5),
        ("speculative", True, "words", 1.0),
        ("speculative", False, "pieces", 1.0),
        ("token_fusion", False, "words", 0.5),
        ("device_only", False, "words", 0.5),
    ],
)
def test_pipelined_and_sequential_loops_give_identical_tokens(
    method: str, greedy: bool, family: str, lam: float
) -> None:
    device, llm = _pair(family)
    for seed in (0, 1):
        cfg = GenerationConfig(
            method=method, max_new_tokens=32, greedy=greedy, seed=seed, lam=lam, top_k=50
        )
        runs = [
            Decoder(device, InProcessVerifier(llm)).generate(
                PROMPT, cfg.model_copy(update={"pipeline": pipe})
            )
            for pipe in (False, True)
        ]
        sequential, pipelined = runs
        assert pipelined.token_ids == sequential.token_ids
        same = [dataclasses.replace(r, ahead=None) for r in pipelined.stats.rounds]
        assert same == list(sequential.stats.rounds)
        assert pipelined.stats.cloud_calls == sequential.stats.cloud_calls
        # Only rounds that passed whole say whether their draft made ahead held.
        assert all(r.ahead is None for r in sequential.stats.rounds)
        assert all(r.ahead is None or r.accepted == r.drafted for r in pipelined.stats.rounds)


def test_pipelining_uses_its_speculative_drafts() -> None:
    """With identical models every draft passes, so the speculative next block is always used:
    the device never drafts a position twice (re-feeds only the tokens it had to)."""
    device, copy = _twins()
    cfg = GenerationConfig(max_new_tokens=40, lam=0.5, adaptive_draft=False, draft_tokens=4)
    computed = {}
    for pipe in (False, True):
        decoder = Decoder(device, InProcessVerifier(copy))
        res = decoder.generate(build_prompt("hello", ""), cfg.model_copy(update={"pipeline": pipe}))
        assert all(r.accepted == r.drafted for r in res.stats.rounds)
        computed[pipe] = decoder._private.tokens_computed
        # Every draft made ahead held (the last round has none: the answer is full).
        n = len(res.stats.rounds)
        expected = [True] * (n - 1) + [None] if pipe else [None] * n
        assert [r.ahead for r in res.stats.rounds] == expected
    assert computed[True] == computed[False]


def test_a_guess_holds_only_for_a_whole_round_that_added_what_it_assumed() -> None:
    nxt = Drafting(before=[1, 2, 3], public_before=[1, 2, 3], k=2, room=9, limit=2)
    guess = Guess(assumed=[2, 3], next=nxt)
    assert guess.held([2, 3], whole=True) is True and guess.holds([2, 3], True) is nxt
    assert guess.held([2, 4], whole=True) is False and guess.holds([2, 4], True) is None
    assert guess.held([2, 3], whole=False) is None
    assert Guess(assumed=[2, 3], next=None).held([2, 3], whole=True) is None


def test_adaptive_k_grows_after_full_rounds_and_shrinks_after_rejections() -> None:
    schedule = DraftSchedule(k=4, adaptive=True, k_max=9)
    seen = []
    for full in (True, True, True, False, False, False, False, False):
        schedule.k = schedule.after(full)
        seen.append(schedule.k)
    assert seen == [6, 8, 9, 8, 7, 6, 5, 4]
    schedule.k = 1
    assert schedule.after(False) == 1
    fixed = DraftSchedule(k=4, adaptive=False, k_max=4)
    assert fixed.after(True) == fixed.after(False) == 4


def test_adaptive_k_in_a_run() -> None:
    """Draft sizes in a real run follow the rule from the round before (within the room left)."""
    device, copy = _twins()
    cfg = GenerationConfig(max_new_tokens=60, draft_tokens=2, max_draft_tokens=7, ignore_eos=True)
    res = Decoder(device, InProcessVerifier(copy)).generate(build_prompt("hello", ""), cfg)
    sizes = [r.drafted for r in res.stats.rounds]
    assert sizes[:4] == [2, 4, 6, 7]  # identical models: every round passes whole
    fixed = Decoder(device, InProcessVerifier(copy)).generate(
        build_prompt("hello", ""), cfg.model_copy(update={"adaptive_draft": False})
    )
    assert {r.drafted for r in fixed.stats.rounds[:-1]} == {2}
    assert len(res.stats.rounds) < len(fixed.stats.rounds)


def test_adaptive_k_shrinks_when_drafts_fail() -> None:
    device, llm = _pair()
    cfg = GenerationConfig(max_new_tokens=40, draft_tokens=6, lam=1e6, ignore_eos=True)
    res = Decoder(device, InProcessVerifier(llm)).generate(PROMPT, cfg)
    sizes = [r.drafted for r in res.stats.rounds]
    assert sizes[:6] == [6, 5, 4, 3, 2, 1]  # lam this large rejects every first token


@pytest.mark.parametrize("family", ["words", "pieces"])
def test_incremental_text_equals_decoding_the_whole_sequence(family: str) -> None:
    backend = tiny_backend(0, family=family)
    rng = random.Random(0)
    text_of = IncrementalText(backend.decode)
    ids: list[int] = []
    for _ in range(400):
        if ids and rng.random() < 0.3:
            ids = ids[: rng.randrange(len(ids))]  # a rejection: the sequence shrinks
        ids = ids + [rng.randrange(backend.vocab_size) for _ in range(rng.randrange(1, 6))]
        assert text_of(ids) == backend.decode(ids)


class _SpellsTheGuess(CloudVerifier):
    """A text-mode cloud that rejects every draft at its first unit and offers, as its top
    candidate, the draft's text followed by the device's own next token: the recovered tokens
    then equal the draft plus the device's bonus guess, though the round did not pass whole."""

    def __init__(self, device: ModelBackend) -> None:
        self.device = device

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        assert isinstance(request.prefix, Text) and isinstance(request.draft, Text)
        dev = self.device
        text = request.prefix.text + request.draft.text
        ids = dev.encode_chat([m.model_dump() for m in request.prompt]) + dev.encode(text)
        logits, _ = dev.forward(ids, None)
        guess = dev.decode([int(logits[-1].argmax())])
        strings = [request.draft.text + " " + guess.strip(), " tell", " plan"]
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=0,
            top_k=TopK(strings=strings, logprobs=[-0.1, -3.0, -4.0]),
        )


def test_a_recovery_that_spells_the_guess_does_not_reuse_the_speculative_draft() -> None:
    device = _twins()[0]
    prompt = build_prompt("what is my plan for friday ?", "")
    cfg = GenerationConfig(max_new_tokens=24, draft_tokens=3, lam=0.5)
    runs = [
        Decoder(device, _SpellsTheGuess(device), wire="text").generate(
            prompt, cfg.model_copy(update={"pipeline": pipe})
        )
        for pipe in (False, True)
    ]
    assert runs[1].token_ids == runs[0].token_ids
    assert [r.drafted for r in runs[1].stats.rounds] == [r.drafted for r in runs[0].stats.rounds]
    assert any(r.drafted > 1 for r in runs[0].stats.rounds[:1])


def test_forward_tail_gives_the_last_rows_of_a_full_forward() -> None:
    """The output layer may skip a prompt's positions: the rows asked for are unchanged."""
    import torch

    backend = tiny_backend(0)
    ids = backend.encode_chat([{"role": "user", "content": "what is my plan for friday ?"}])
    full, _ = backend.forward(ids, None)
    tail, cache = backend.forward_tail(ids, None, 3)
    assert tail.shape == (3, full.shape[1])
    torch.testing.assert_close(tail, full[-3:], rtol=1e-4, atol=1e-4)
    more, _ = backend.forward_tail([5, 6], cache, 1)
    whole, _ = backend.forward([*ids, 5, 6], None)
    torch.testing.assert_close(more[0], whole[-1], rtol=1e-4, atol=1e-4)


class _WantsToEnd(CloudVerifier):
    """A cloud whose favourite next token is always the end of the answer."""

    def __init__(self, device: ModelBackend) -> None:
        self.end = device.end_token_id

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        return VerifyResponse(
            request_id=request.request_id,
            n_accepted=0,
            top_k=TopK(ids=[self.end, 7], logprobs=[-0.01, -5.0]),
        )


def test_a_run_that_ignores_the_end_never_recovers_an_end_token() -> None:
    """Taking the end token would add nothing to the answer and the round would repeat forever:
    a run that ignores the end picks among the other candidates."""
    device = _twins()[0]
    cfg = GenerationConfig(max_new_tokens=12, ignore_eos=True, draft_tokens=2)
    res = Decoder(device, _WantsToEnd(device)).generate(PROMPT, cfg)
    assert res.stats.new_tokens == 12 and res.finish_reason == "length"
    assert res.token_ids.count(7) == len(res.stats.rounds) == 12
    ended = Decoder(device, _WantsToEnd(device)).generate(
        PROMPT, cfg.model_copy(update={"ignore_eos": False})
    )
    assert ended.finish_reason == "eos"


@pytest.mark.parametrize("method", ["specsteer", "speculative", "token_fusion"])
def test_an_answer_ends_only_once_it_holds_min_new_tokens(method: str) -> None:
    """Before ``min_new_tokens`` the recovery takes the cloud's best token other than the end,
    and from there on the end stands."""
    device = _twins()[0]
    cfg = GenerationConfig(max_new_tokens=12, min_new_tokens=5, draft_tokens=2, method=method)
    res = Decoder(device, _WantsToEnd(device)).generate(PROMPT, cfg)
    assert res.finish_reason == "eos"
    assert res.token_ids[:5] == (7, 7, 7, 7, 7)
    assert device.end_token_id not in res.token_ids[:5]


def test_the_answer_drops_an_end_token_that_comes_too_early() -> None:
    answer = Answer(frozenset({0}), budget=10, min_tokens=3)
    assert answer.take([5, 0, 6, 0]) == (5, 6) and not answer.ended
    assert answer.take([7, 0, 8]) == (7, 0) and answer.ended
    assert answer.tokens == [5, 6, 7, 0]


def test_the_drafter_rules_out_the_end_before_min_new_tokens() -> None:
    cfg = GenerationConfig(min_new_tokens=3)
    assert ruled_out(2, frozenset({2}), cfg, {}) == {2}
    assert ruled_out(3, frozenset({2}), cfg, {}) == set()
    assert ruled_out(3, frozenset({2}), cfg, {3: {5}}) == {5}
    assert ruled_out(9, frozenset({2}), cfg.model_copy(update={"ignore_eos": True}), {}) == {2}
