"""Round events: a generation is a stream of them, and everything that reports on it folds them."""

from __future__ import annotations

import doctest
import functools

import pytest

from specsteer import (
    METHOD_NAMES,
    Assistant,
    ConfigurationError,
    Decoder,
    Fallback,
    Finished,
    GenerationConfig,
    PrivateEgress,
    Round,
    RoundEvent,
    StatsFold,
    TextFold,
    Tokens,
    build_prompt,
)
from specsteer.apps.web._tokens import PieceMarker
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier, VerifyRequest, VerifyResponse
from specsteer.privacy import AuditLog, EgressPolicy
from specsteer.testing import tiny_backend

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")


@functools.cache
def _pair(family: str = "words"):  # type: ignore[no-untyped-def]
    return tiny_backend(0), tiny_backend(1, family=family)


def _events(method: str, family: str = "words", **kw: object) -> list[RoundEvent]:
    device, llm = _pair(family)
    settings: dict[str, object] = {"max_new_tokens": 32, "seed": 3, "lam": 0.3, **kw}
    cfg = GenerationConfig(method=method, **settings)
    return list(Decoder(device, InProcessVerifier(llm)).stream(PROMPT, cfg))


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("family", ["words", "pieces"])
def test_the_events_add_up_to_the_result(method: str, family: str) -> None:
    events = _events(method, family, greedy=False)
    assert isinstance(events[-1], Finished)
    assert not any(isinstance(e, Finished) for e in events[:-1])
    result = events[-1].result
    tokens = [t for e in events if isinstance(e, Tokens) for t in e.ids]
    assert tuple(tokens) == result.token_ids
    folded = StatsFold(method).fold(events[:-1]).stats(result.stats.wall_seconds)
    assert folded == result.stats
    device, llm = _pair(family)
    reader = llm if method == "cloud_only" else device
    text = TextFold(reader.decode, reader.eos_token_ids)
    assert "".join(text.add(e) for e in events if isinstance(e, Tokens)).strip() == result.text


@pytest.mark.parametrize("method", ["specsteer", "speculative", "token_fusion"])
def test_each_round_says_what_it_kept_and_where_the_tokens_came_from(method: str) -> None:
    events = _events(method)
    rounds = [e for e in events if isinstance(e, Round)]
    assert rounds and all(r.accepted <= len(r.drafted) for r in rounds)
    assert all(r.rejected == r.drafted[r.accepted :] for r in rounds)
    kinds = [e.kind for e in events if isinstance(e, Tokens)]
    assert set(kinds) <= {"accepted", "recovered"}
    assert kinds.count("recovered") == sum(r.recovered for r in rounds)
    if method == "token_fusion":  # an empty draft: every token is a recovery
        assert set(kinds) == {"recovered"} and all(r.drafted == () for r in rounds)


def test_device_only_and_cloud_only_tokens_say_so() -> None:
    assert {e.kind for e in _events("device_only") if isinstance(e, Tokens)} == {"device"}
    assert {e.kind for e in _events("cloud_only") if isinstance(e, Tokens)} == {"cloud"}


def test_a_round_kept_local_says_why() -> None:
    """Private text the device would draft (its own device-only answer) keeps rounds local."""
    device, llm = _pair()
    cfg = GenerationConfig(max_new_tokens=24, lam=0.3)
    own = Decoder(device, None).generate(PROMPT, cfg.model_copy(update={"method": "device_only"}))
    egress = PrivateEgress(policy=EgressPolicy(overlap_n=2, overlap_min_short=2))
    egress.begin([own.text])
    events = list(Decoder(device, InProcessVerifier(llm), egress=egress).stream(PROMPT, cfg))
    local = [e for e in events if isinstance(e, Round) and e.local]
    assert local and {r.reason for r in local} <= {"guard", "refused"}
    assert any(isinstance(e, Tokens) and e.kind == "local" for e in events)


class _Down(CloudVerifier):
    def verify(self, request: VerifyRequest) -> VerifyResponse:
        from specsteer import CloudError

        raise CloudError("connection refused")


def test_a_cloud_failure_is_one_fallback_event_then_device_tokens() -> None:
    device, _ = _pair()
    events = list(Decoder(device, _Down()).stream(PROMPT, GenerationConfig(max_new_tokens=8)))
    falls = [e for e in events if isinstance(e, Fallback)]
    assert len(falls) == 1 and "connection refused" in falls[0].reason
    after = events[events.index(falls[0]) :]
    assert {e.kind for e in after if isinstance(e, Tokens)} == {"device"}


def test_the_web_pages_marks_come_from_the_events() -> None:
    device, _ = _pair()
    events = _events("specsteer", lam=0.02)
    marker = PieceMarker(device.decode, device.eos_token_ids)
    pieces = [p for e in events for p in marker.add(e)]
    result = events[-1].result  # type: ignore[union-attr]
    kept = "".join(p["text"] for p in pieces if p["kind"] != "rejected")
    assert kept.strip() == result.text
    rejected = [e for e in events if isinstance(e, Round) and e.rejected]
    assert rejected, "this setting rejects drafts"
    assert sum(p["kind"] == "rejected" for p in pieces) == len(rejected)
    assert {p["kind"] for p in pieces} >= {"accepted", "rejected", "recovered"}


def test_stream_checks_its_input_before_the_first_event() -> None:
    assistant = Assistant.in_process(*_pair())
    with pytest.raises(ConfigurationError):
        assistant.stream("hello", method="no_such_method")


def test_the_stream_docstring_example_runs() -> None:
    finder = doctest.DocTestFinder()
    tests = finder.find(Assistant.stream, "Assistant.stream", globs={"Assistant": Assistant})
    assert tests and tests[0].examples
    runner = doctest.DocTestRunner()
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_audit_log_unchanged_by_streaming(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Streaming is the same generation: the same payloads reach the audit log."""
    device, llm = _pair()
    logs = []
    for name in ("stream", "generate"):
        log = AuditLog(tmp_path / f"{name}.jsonl")
        decoder = Decoder(device, InProcessVerifier(llm), egress=PrivateEgress(audit_log=log))
        cfg = GenerationConfig(max_new_tokens=16, seed=1)
        if name == "stream":
            list(decoder.stream(PROMPT, cfg))
        else:
            decoder.generate(PROMPT, cfg)
        logs.append([r["payload_type"] for r in log.records()])
    assert logs[0] == logs[1] and logs[0]


@pytest.mark.parametrize("family", ["words", "pieces"])
def test_text_by_new_tokens_survives_runs_of_tokens_that_decode_to_nothing(family: str) -> None:
    """Special tokens decode to ""; after a run of them the join to the next word still holds."""
    import random

    backend = tiny_backend(0, family=family)
    empty = [t for t in range(backend.vocab_size) if backend.decode([t]) == ""]
    assert empty, "the tiny tokenizer has special tokens"
    rng = random.Random(1)
    words = [t for t in range(backend.vocab_size) if backend.decode([t]).strip()]
    ids: list[int] = []
    text = TextFold(backend.decode, frozenset())
    shown = ""
    for _ in range(200):
        new = [rng.choice(empty) for _ in range(rng.randrange(0, 7))] + [rng.choice(words)]
        ids += new
        shown += text.add(Tokens(tuple(new), "device"))
        assert shown == backend.decode(ids).rstrip("\ufffd")
