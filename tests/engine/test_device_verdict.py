"""Drafts judged on the device from the cloud's scores of every position: the same verdicts as
the cloud's, fewer bytes out (no context-free scores), and a cloud that leaves them out fails
cleanly."""

from __future__ import annotations

import functools
import random

import pytest
import torch

from specsteer import Decoder, GenerationConfig, ProtocolError, build_prompt
from specsteer._link import _scored
from specsteer.cloud_adapter import (
    DraftScores,
    ForwardingVerifier,
    InProcessVerifier,
    TokenIds,
    VerifierCore,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
    check_response,
)
from specsteer.testing import tiny_backend

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")


@functools.cache
def _pair():  # type: ignore[no-untyped-def]
    return tiny_backend(0), tiny_backend(1)


class _Tap(ForwardingVerifier):
    def __init__(self, inner: InProcessVerifier) -> None:
        super().__init__(inner)
        self.requests: list[VerifyRequest] = []
        self.responses: list[VerifyResponse] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        self.requests.append(VerifyRequest.model_validate_json(wire))
        response = super().transmit(request, wire)
        self.responses.append(response)
        return response


def _run(cfg: GenerationConfig) -> tuple[tuple[int, ...], _Tap]:
    device, llm = _pair()
    tap = _Tap(InProcessVerifier(llm))
    result = Decoder(device, tap).generate(PROMPT, cfg)
    return result.token_ids, tap


@pytest.mark.parametrize(("greedy", "lam"), [(True, 0.5), (False, 0.3), (True, 0.02)])
def test_the_device_judges_as_the_cloud_would_and_sends_no_context_free_scores(
    greedy: bool, lam: float
) -> None:
    for seed in (0, 1):
        cfg = GenerationConfig(max_new_tokens=32, greedy=greedy, seed=seed, lam=lam, pipeline=True)
        here, tap = _run(cfg)
        there, cloud = _run(cfg.model_copy(update={"device_verdict": False}))
        assert here == there
        assert [r.params.verdict for r in tap.requests] == ["device"] * len(tap.requests)
        assert all(r.ctxfree_logprobs is None for r in tap.requests)
        assert all(r.scores is not None for r in tap.responses)
        assert {r.params.verdict for r in cloud.requests} == {"cloud"}
        assert all(r.ctxfree_logprobs is not None for r in cloud.requests if r.n_draft)


@pytest.mark.parametrize(
    "update",
    [
        {"pipeline": False},  # nothing to overlap: the cloud judges
        {"method": "speculative"},  # greedy standard speculative decoding reads no P_S0
        {"ctxfree_source": "cloud"},
    ],
)
def test_the_cloud_judges_where_device_judging_gains_nothing_or_cannot(update: dict) -> None:
    device, llm = _pair()
    slm = tiny_backend(0)
    tap = _Tap(InProcessVerifier(llm, slm))
    cfg = GenerationConfig(max_new_tokens=16, seed=0, pipeline=True).model_copy(update=update)
    Decoder(device, tap).generate(PROMPT, cfg)
    assert tap.requests and {r.params.verdict for r in tap.requests} == {"cloud"}


class _Elsewhere(_Tap):
    """The same cloud, as if it computed on another machine."""

    def __init__(self, inner: InProcessVerifier) -> None:
        super().__init__(inner)
        self.computes_here = False


@pytest.mark.parametrize(("tap", "verdicts"), [(_Tap, {"cloud"}), (_Elsewhere, {"device"})])
def test_by_default_only_a_cloud_on_another_machine_is_pipelined(
    tap: type[_Tap], verdicts: set[str]
) -> None:
    """Drafting ahead beside a cloud that computes on this machine's CPU would take its
    cores: by default such a round is sequential (so the cloud judges its drafts)."""
    device, llm = _pair()
    cloud = tap(InProcessVerifier(llm))
    assert cloud.computes_here is (tap is _Tap)
    Decoder(device, cloud).generate(PROMPT, GenerationConfig(max_new_tokens=16, seed=0))
    assert {r.params.verdict for r in cloud.requests if r.n_draft} == verdicts


def test_scores_of_every_position_give_the_clouds_own_verdict() -> None:
    """The reference verifier's verdict and the one the device reaches from its scores agree
    on random drafts, greedy and sampled."""
    _, llm = _pair()
    core = VerifierCore(llm)
    rng = random.Random(3)
    for trial in range(40):
        draft = [rng.randrange(llm.vocab_size) for _ in range(rng.randint(1, 6))]
        ctxfree = [-rng.uniform(0.0, 6.0) for _ in draft]
        params = VerifyParams(lam=rng.choice([0.02, 0.5, 1.0]), greedy=trial % 2 == 0, seed=trial)
        common = {
            "request_id": f"r{trial}",
            "prompt": [{"role": "user", "content": "hello"}],
            "prefix": TokenIds(ids=[5, 6]),
            "draft": TokenIds(ids=draft),
        }
        judged = core.verify(VerifyRequest(**common, ctxfree_logprobs=ctxfree, params=params))
        asked = VerifyRequest(**common, params=params.model_copy(update={"verdict": "device"}))
        scores = core.verify(asked).scores
        assert scores is not None and len(scores.top_k) == len(draft) + 1
        ours = asked.params.judge(
            _scored(scores, draft), torch.tensor(ctxfree, dtype=torch.float64)
        )
        assert ours.n_accepted == judged.n_accepted
        assert list(ours.top_k[0]) == judged.top_k.ids
        assert ours.top_k[1] == pytest.approx(judged.top_k.logprobs)


def _device_request(n: int = 2) -> VerifyRequest:
    return VerifyRequest(
        request_id="r",
        prompt=[{"role": "user", "content": "hello"}],
        prefix=TokenIds(ids=[1]),
        draft=TokenIds(ids=list(range(3, 3 + n))),
        params=VerifyParams(verdict="device", top_k=2),
    )


def _answer(scores: DraftScores | None) -> VerifyResponse:
    top = {"ids": [3, 4], "logprobs": [-0.5, -1.5]}
    return VerifyResponse.model_validate(
        {"request_id": "r", "n_accepted": 0, "top_k": top, "scores": scores}
    )


def _scores(n: int, ids: list[int] | None = None) -> DraftScores:
    top = {"ids": ids or [3, 4], "logprobs": [-0.5, -1.5]}
    return DraftScores.model_validate({"logprobs": [-0.5] * n, "top_k": [top] * (n + 1)})


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (None, "sent none"),
        (_scores(1), "scored 1 draft tokens of 2"),
        (_scores(2, [3, 99]), "outside the vocabulary"),
        (_scores(2, [3, 3]), "repeat"),
    ],
)
def test_missing_or_bad_scores_are_refused(scores: DraftScores | None, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        check_response(_device_request(), _answer(scores), vocab_size=50)


def test_scores_the_request_did_not_ask_for_are_refused() -> None:
    request = _device_request().model_copy(
        update={"params": VerifyParams(top_k=2), "ctxfree_logprobs": [-1.0, -1.0]}
    )
    with pytest.raises(ProtocolError, match="did not ask for"):
        check_response(request, _answer(_scores(2)), vocab_size=50)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"ctxfree_logprobs": [-1.0, -1.0]}, "send no ctxfree_logprobs"),
        ({"params": {"verdict": "device", "samples": 4, "greedy": False}}, "samples=0"),
        (
            {
                "prefix": {"kind": "text", "text": "a"},
                "draft": {"kind": "text", "text": "bc", "offsets": [1, 2]},
            },
            "token ids",
        ),
    ],
)
def test_a_device_verdict_request_is_checked(update: dict, message: str) -> None:
    doc = _device_request().model_dump() | update
    with pytest.raises(ValueError, match=message):
        VerifyRequest.model_validate(doc)


def test_scores_must_cover_every_position() -> None:
    with pytest.raises(ValueError, match="every draft position"):
        DraftScores.model_validate(
            {"logprobs": [-0.5, -0.5], "top_k": [{"ids": [1], "logprobs": [-0.1]}]}
        )
