"""The context-lift policy: a draft token the private context made likely stays on the device; a
token the public model would have written as readily leaves; tau = inf changes nothing."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch

from specsteer import (
    Decoder,
    GenerationConfig,
    PrivateEgress,
    Round,
    Tokens,
    build_prompt,
)
from specsteer.backends import ModelBackend
from specsteer.cloud_adapter import ForwardingVerifier, InProcessVerifier, VerifyRequest
from specsteer.privacy import AuditLog, ContextLift, EgressPolicy, audit_show
from specsteer.testing import tiny_backend

WORDS = ["<end>", "system", "user", "assistant", "?", "the", "plan", "is", "dinner", "in"]
WORDS += ["lisbon", "paris", ".", "with", "my", "sister", "lives", "what", "friday", "for"]
WORDS += ["private", "context"]  # a placeholder, [PRIVATE_CONTEXT_1], reads as these two
#: The answer both views write, one bigram at a time; after "in" the views part ways.
CHAIN = {"the": "plan", "plan": "is", "is": "dinner", "dinner": "in", "lisbon": ".", "paris": "."}
CHAIN |= {".": "<end>", "assistant": "the"}


class Rigged(ModelBackend):
    """A word-level model with hand-built logits: each word is followed by the next word of
    :data:`CHAIN` (logit 8); after "in" the private view, whose prompt says "lisbon", writes
    "lisbon" (logit 8, "paris" 3) and the public view writes "paris" (logit 5, "lisbon" 2)."""

    name = "rigged"

    @property
    def vocab_size(self) -> int:
        return len(WORDS)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({0})

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        seen = list(cache or []) + list(ids)
        rows = [self._row(seen[: len(cache or []) + i + 1]) for i in range(len(ids))]
        return torch.stack(rows), seen

    def _row(self, seq: list[int]) -> torch.Tensor:
        row = torch.zeros(len(WORDS))
        last = WORDS[seq[-1]]
        if last == "in":
            start = len(seq) - seq[::-1].index(WORDS.index("assistant"))  # the answer's start
            knows = WORDS.index("lisbon") in seq[:start]
            row[WORDS.index("lisbon")], row[WORDS.index("paris")] = (8.0, 3.0) if knows else (2, 5)
        else:
            row[WORDS.index(CHAIN.get(last, "<end>"))] = 8.0
        return row

    def crop(self, cache: Any, length: int) -> Any | None:
        return list(cache)[:length]

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> list[int]:
        ids: list[int] = []
        for m in messages:
            ids += [WORDS.index(m["role"]), *self.encode(m["content"])]
        return [*ids, WORDS.index("assistant")]

    def encode(self, text: str) -> list[int]:
        return [WORDS.index(w) for w in re.findall(r"[a-z]+|[.?]", text.lower()) if w in WORDS]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return " ".join(WORDS[i] for i in ids if not (skip_special_tokens and i == 0))


PROMPT = build_prompt("what is the plan for friday ?", context="my sister lives in lisbon")


class _Tap(ForwardingVerifier):
    def __init__(self, inner: InProcessVerifier) -> None:
        super().__init__(inner)
        self.sent: list[bytes] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> Any:
        self.sent.append(wire)
        return super().transmit(request, wire)


def _seen(sent: list[bytes]) -> list[str]:
    """What the cloud read of the answer in each payload: the prefix and the draft, as text."""
    out = []
    for wire in sent:
        doc = json.loads(wire)
        out.append(Rigged().decode([*doc["prefix"]["ids"], *doc["draft"]["ids"]]))
    return out


def _run(policy: EgressPolicy, tmp_path: Any, **cfg: Any) -> tuple[Any, list[Any], list[bytes]]:
    device = Rigged()
    tap = _Tap(InProcessVerifier(Rigged()))
    egress = PrivateEgress(policy=policy, audit_log=AuditLog(tmp_path / "audit.jsonl"))
    egress.begin([])
    settings = {"max_new_tokens": 12, "lam": 0.01, "draft_tokens": 8, "adaptive_draft": False}
    decoder = Decoder(device, tap, egress=egress)
    events = list(decoder.stream(PROMPT, GenerationConfig(**{**settings, **cfg})))
    return events[-1].result, events, tap.sent


def test_a_high_lift_token_stays_on_the_device_and_a_zero_lift_one_leaves(tmp_path: Any) -> None:
    result, events, sent = _run(EgressPolicy(max_context_lift=1.0), tmp_path)
    assert result.text == "the plan is dinner in lisbon ."  # the user still gets the context's word
    seen = _seen(sent)
    assert seen and all("lisbon" not in text for text in seen)
    assert any("dinner in" in text for text in seen)  # zero lift: it left
    kept = [e for e in events if isinstance(e, Tokens) and e.kept == "lift"]
    assert [Rigged().decode(list(e.ids)) for e in kept][:1] == ["lisbon ."]
    assert any(isinstance(e, Round) and e.local and e.reason == "lift" for e in events)
    report = result.privacy
    assert report.tokens_kept_for_lift >= 1
    assert report.max_context_lift_sent <= 1.0 and report.context_lift_sent < 1.0
    shown = audit_show(tmp_path / "audit.jsonl", last=0)
    assert '"held_back_tokens": 3' in shown
    notes = [r["note"]["context_lift"] for r in AuditLog(tmp_path / "audit.jsonl").records()]
    assert notes[0]["held_back_tokens"] == 3 and notes[0]["largest"] <= 1.0


def test_with_tau_off_the_same_draft_leaves_whole(tmp_path: Any) -> None:
    result, _, sent = _run(EgressPolicy(max_context_lift=None), tmp_path)
    assert result.text == "the plan is dinner in lisbon ."
    assert any("lisbon" in text for text in _seen(sent))
    assert result.privacy.tokens_kept_for_lift == 0 and result.privacy.context_lift_sent == 0.0


def test_a_budget_keeps_back_the_token_that_would_overrun_it(tmp_path: Any) -> None:
    result, _, sent = _run(EgressPolicy(max_context_lift=None, context_lift_budget=2.0), tmp_path)
    assert all("lisbon" not in text for text in _seen(sent))
    assert result.privacy.tokens_kept_for_lift >= 1 and result.privacy.context_lift_sent <= 2.0


def test_a_recovered_token_over_tau_reaches_the_user_not_the_clouds_view(tmp_path: Any) -> None:
    """Token fusion drafts nothing: "lisbon" is the device's steered pick among the cloud's
    candidates, and would enter the next request's prefix; the policy keeps it out."""
    result, events, sent = _run(
        EgressPolicy(max_context_lift=1.0), tmp_path, method="token_fusion", beta=4.0, top_k=4
    )
    assert "lisbon" in result.text
    seen = _seen(sent)
    assert all("lisbon" not in text for text in seen)
    assert any(isinstance(e, Tokens) and e.kind == "recovered" and e.kept == "lift" for e in events)
    assert any("in private context" in text for text in seen)  # a placeholder in its place


@functools.cache
def _tiny() -> tuple[ModelBackend, ModelBackend]:
    return tiny_backend(0), tiny_backend(1)


@pytest.mark.parametrize("method", ["specsteer", "token_fusion", "speculative"])
@pytest.mark.parametrize("greedy", [True, False])
def test_tau_infinite_reproduces_the_tokens_and_payloads_exactly(
    method: str, greedy: bool, tmp_path: Any
) -> None:
    runs = []
    for tau in (None, math.inf, 1e30):
        device, llm = _tiny()
        tap = _Tap(InProcessVerifier(llm))
        egress = PrivateEgress(policy=EgressPolicy(max_context_lift=tau))
        # A policy reads the context-free scores before a draft leaves, so the cloud judges
        # under one: compare with a cloud that judges without one.
        cfg = GenerationConfig(
            method=method, greedy=greedy, seed=5, max_new_tokens=24, lam=0.3, device_verdict=False
        )
        prompt = build_prompt("what is my plan for friday ?", "dinner in rome with my sister")
        result = Decoder(device, tap, egress=egress).generate(prompt, cfg)
        ids = [re.sub(rb'"request_id":"[a-p]+"', b"", w) for w in tap.sent]
        runs.append((result.token_ids, ids))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][1], "payloads were sent"


def test_the_policy_counts_what_left_and_stops_at_tau_or_the_budget() -> None:
    policy = ContextLift(max_lift=2.0, budget=3.0)
    assert policy.allowance([0.1, -1.0, 1.5, 2.5, 0.0]) == 3  # 2.5 > tau
    policy.sent([0.1, -1.0, 1.5])
    assert policy.allowance([1.0, 0.5]) == 1  # 1.6 + 1.0 = 2.6 <= 3, + 0.5 = 3.1 > 3
    policy.kept(2)
    report = policy.report()
    assert (report.tokens_sent, report.tokens_kept) == (3, 2)
    assert report.nats_sent == pytest.approx(1.6) and report.largest_sent == 1.5
    assert not ContextLift().active and ContextLift().allowance([50.0] * 9) == 9
    with pytest.raises(ValueError):
        ContextLift(max_lift=-1.0)
