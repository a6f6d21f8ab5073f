"""The OpenAI-compatible adapter: the ratio test on the device from returned log-probabilities."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from specsteer import CloudError, Decoder, GenerationConfig, ProtocolError, build_prompt
from specsteer.cloud_adapter import (
    OpenAICompatibleVerifier,
    TokenIds,
    VerifyParams,
    VerifyRequest,
)

pytestmark = pytest.mark.timeout(60)

QUERY = "what is my plan for friday ?"


def request(draft, lp0, **params) -> VerifyRequest:
    return VerifyRequest(
        request_id="r",
        prompt=[{"role": "user", "content": QUERY}],
        prefix=TokenIds(ids=[]),
        draft=TokenIds(ids=draft),
        ctxfree_logprobs=lp0,
        params=VerifyParams(**{"lam": 0.5, "top_k": 2, **params}),
    )


def entry(actual: int, lp: float, rank: int, top: dict[int, float]) -> dict:
    out = {str(actual): {"logprob": lp, "rank": rank, "decoded_token": "x"}}
    for r, (i, v) in enumerate(top.items(), start=1):
        out.setdefault(str(i), {"logprob": v, "rank": r, "decoded_token": "y"})
    return out


class FakeVllm:
    """Answers /v1/completions with hand-built log-probabilities; keeps the last body."""

    def __init__(self, draft_entries: list[dict], bonus: dict[str, float] | None = None):
        self.draft_entries = draft_entries
        self.bonus = bonus if bonus is not None else {"token_id:40": -0.2, "token_id:41": -1.9}
        self.last: dict = {}

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.last = json.loads(req.content)
        n_prompt = len(self.last["prompt"]) - len(self.draft_entries)
        plp = [None] + [entry(t, -1.0, 1, {}) for t in self.last["prompt"][1:n_prompt]]
        doc = {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [
                {
                    "index": 0,
                    "text": "x",
                    "logprobs": {"top_logprobs": [self.bonus], "tokens": ["token_id:40"]},
                    "prompt_logprobs": plp + self.draft_entries,
                    "finish_reason": "length",
                }
            ],
        }
        return httpx.Response(200, content=json.dumps(doc).encode())


def verifier(slm, fake, **kw) -> OpenAICompatibleVerifier:
    return OpenAICompatibleVerifier(
        "http://127.0.0.1:9",
        "m",
        tokenizer=slm,
        transport=httpx.MockTransport(fake),
        **{"retries": 0, **kw},
    )


def test_request_shape(slm) -> None:
    fake = FakeVllm([entry(20, -0.5, 1, {20: -0.5, 21: -1.5})])
    verifier(slm, fake).verify(request([20], [-0.6]))
    body = fake.last
    prompt_ids = slm.encode_chat([{"role": "user", "content": QUERY}])
    assert body["prompt"] == [*prompt_ids, 20]
    assert body["max_tokens"] == 1 and body["prompt_logprobs"] == 2 and body["logprobs"] == 2
    assert body["return_tokens_as_token_ids"] is True and body["echo"] is False


def test_the_body_pins_every_setting_that_would_change_the_scores(slm) -> None:
    """vLLM applies a model's generation_config defaults (Qwen2.5: repetition_penalty 1.05) to
    any sampling setting it is not sent; each is pinned to its neutral value."""
    fake = FakeVllm([entry(20, -0.5, 1, {20: -0.5, 21: -1.5})])
    verifier(slm, fake).verify(request([20], [-0.6]))
    assert fake.last == {
        "model": "m",
        "prompt": [*slm.encode_chat([{"role": "user", "content": QUERY}]), 20],
        "max_tokens": 1,
        "temperature": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "min_p": 0.0,
        "logprobs": 2,
        "echo": False,
        "return_tokens_as_token_ids": True,
        "prompt_logprobs": 2,
    }


def test_draft_token_outside_the_top_list_is_scored_with_its_own_logprob(slm) -> None:
    """Token 30 is rank 57, far outside the top 2, yet likely enough to pass the ratio test."""
    fake = FakeVllm([entry(30, -5.0, 57, {20: -0.3, 21: -1.6})])
    resp = verifier(slm, fake).verify(request([30], [-5.5]))
    # log P_L = -5.0 >= log P_S0 + log lam = -5.5 - 0.69: accepted. Scored as probability 0 it
    # would have been rejected.
    assert resp.n_accepted == 1
    assert resp.top_k.ids == [40, 41]  # all passed: the top-k after the draft (bonus position)
    resp = verifier(slm, fake).verify(request([30], [-4.0]))
    assert resp.n_accepted == 0
    assert resp.top_k.ids == [20, 21]  # the rank-57 actual token is not part of the support
    assert resp.top_k.logprobs == [-0.3, -1.6]


def test_sampled_ratio_test_uses_the_request_seed(slm) -> None:
    fake = FakeVllm([entry(30, math.log(0.5) - 2.0, 9, {20: -0.3})])
    # Acceptance probability is exactly exp(-1) here; the draw comes from the request seed.
    results = {
        seed: verifier(slm, fake).verify(request([30], [-1.0], greedy=False, seed=seed, lam=0.5))
        for seed in range(40)
    }
    accepted = sum(r.n_accepted for r in results.values())
    assert 0 < accepted < 40
    again = verifier(slm, fake).verify(request([30], [-1.0], greedy=False, seed=3, lam=0.5))
    assert again.n_accepted == results[3].n_accepted


BAD = [
    (
        "missing-draft-token",
        [{"21": {"logprob": -0.3, "rank": 1}}],
        None,
        "no log-probability for draft token",
    ),
    ("short-prompt-logprobs", None, None, "entries for a prompt"),
    ("nan", [entry(20, float("nan"), 1, {})], None, "invalid log-probability"),
    ("inf", [entry(20, float("inf"), 1, {})], None, "invalid log-probability"),
    ("positive", [entry(20, 0.5, 1, {})], None, "invalid log-probability"),
    ("non-id-key", [{"abc": {"logprob": -0.3}}], None, "is not an id"),
    ("null-entry", [None], None, "no prompt log-probabilities"),
    (
        "string-keys-at-bonus",
        [entry(20, -0.1, 1, {})],
        {"hello": -0.1},
        "return_tokens_as_token_ids",
    ),
    ("no-bonus-top", [entry(20, -0.1, 1, {})], {}, "no top log-probabilities"),
    ("oov-bonus", [entry(20, -0.1, 1, {})], {"token_id:999999": -0.1}, "outside the vocabulary"),
]


@pytest.mark.parametrize(
    ("entries", "bonus", "message"), [pytest.param(e, b, m, id=i) for i, e, b, m in BAD]
)
def test_bad_completion_responses_are_protocol_errors(slm, entries, bonus, message) -> None:
    fake = FakeVllm(entries if entries is not None else [], bonus)
    if entries is None:  # drop an entry: the list no longer matches the prompt
        original = fake.__call__

        def short(req):
            resp = original(req)
            doc = resp.json()
            doc["choices"][0]["prompt_logprobs"] = doc["choices"][0]["prompt_logprobs"][:-2]
            return httpx.Response(200, json=doc)

        v = verifier(slm, short)
    else:
        v = verifier(slm, fake)
    with pytest.raises(ProtocolError, match=message):
        v.verify(request([20], [-0.1]))


def test_requests_it_cannot_serve_are_refused_before_sending(slm) -> None:
    fake = FakeVllm([])
    v = verifier(slm, fake)
    with pytest.raises(ProtocolError, match="temperature"):
        v.verify(request([20], [-1.0], temperature=0.7))
    with pytest.raises(ProtocolError, match="ctxfree_logprobs"):
        v.verify(request([20], None))
    assert fake.last == {}


def test_generation_falls_back_when_the_server_lies(slm) -> None:
    def no_logprobs(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"text": "", "prompt_logprobs": None}]})

    v = OpenAICompatibleVerifier(
        "http://127.0.0.1:9", "m", tokenizer=slm, transport=httpx.MockTransport(no_logprobs)
    )
    res = Decoder(slm, v).generate(
        build_prompt(QUERY, "secret"), GenerationConfig(max_new_tokens=6)
    )
    assert res.stats.fallback is not None and "prompt" in res.stats.fallback
    assert res.stats.new_tokens == 6 or res.finish_reason == "eos"


def test_server_errors_surface_as_cloud_errors(slm, live_server) -> None:
    v = OpenAICompatibleVerifier(
        live_server.url, "not-served", tokenizer=slm, token=live_server.token
    )
    with pytest.raises(CloudError, match="not served"):
        v.verify(request([20], [-1.0]))


def test_top_k_above_max_logprobs_is_clamped_or_refused(slm) -> None:
    fake = FakeVllm([entry(20, -0.5, 1, {20: -0.5, 21: -1.5})])
    v = verifier(slm, fake)  # max_logprobs=20, vLLM's default
    resp = v.verify(request([20], [-0.6], top_k=50))
    assert fake.last["logprobs"] == fake.last["prompt_logprobs"] == 20
    assert len(resp.top_k.ids or []) <= 20
    strict = verifier(slm, fake, max_logprobs=5, clamp_top_k=False)
    fake.last = {}
    with pytest.raises(ProtocolError, match="--max-logprobs 50"):
        strict.verify(request([20], [-0.6], top_k=50))
    assert fake.last == {}  # refused before anything was sent
    strict.verify(request([20], [-0.6], top_k=5))
    assert fake.last["logprobs"] == 5


def test_a_base_url_ending_in_v1_reaches_v1_completions(slm) -> None:
    paths: list[str] = []
    fake = FakeVllm([entry(20, -0.5, 1, {20: -0.5})])

    def record(req: httpx.Request) -> httpx.Response:
        paths.append(req.url.path)
        return fake(req)

    for base in (
        "http://gpu:8000",
        "http://gpu:8000/",
        "http://gpu:8000/v1",
        "http://gpu:8000/v1/",
    ):
        OpenAICompatibleVerifier(
            base, "m", tokenizer=slm, transport=httpx.MockTransport(record), insecure_http=True
        ).verify(request([20], [-0.6]))
    assert paths == ["/v1/completions"] * 4


def test_the_response_cap_grows_with_the_prompt(slm) -> None:
    """prompt_logprobs hold k + 1 entries per prompt token: a long prompt needs a larger cap."""
    big = {
        "prompt": list(range(6000)),
        "logprobs": 20,
        "prompt_logprobs": 20,
    }
    v = verifier(slm, FakeVllm([]))
    assert v.response_cap(big) > 8 * 1024 * 1024  # above the old fixed 8 MiB
    assert v.response_cap({"prompt": [1], "logprobs": 20}) < v.channel.max_response_bytes
    fixed = OpenAICompatibleVerifier(
        "http://127.0.0.1:9", "m", tokenizer=slm, max_response_bytes=4096
    )
    assert fixed.response_cap(big) is None  # a configured cap is used as it is

    def huge(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * 8192)

    small = verifier(slm, huge, max_response_bytes=4096)
    with pytest.raises(ProtocolError, match="max_response_bytes"):
        small.verify(request([20], [-0.6]))


def test_a_device_verdict_gets_the_scores_the_adapter_would_judge(slm) -> None:
    """Asked for the scores of every position, the adapter returns what it would have judged;
    the device's verdict on them is the adapter's own."""
    import torch

    from specsteer._link import _scored

    fake = FakeVllm([entry(30, -5.0, 57, {20: -0.3, 21: -1.6}), entry(20, -1.0, 1, {20: -1.0})])
    asked = request([30, 20], None, verdict="device")
    resp = verifier(slm, fake).verify(asked)
    assert resp.scores is not None and resp.scores.logprobs == [-5.0, -1.0]
    assert [t.ids for t in resp.scores.top_k] == [[20, 21], [20], [40, 41]]
    verdicts = set()
    for lp0 in ([-5.5, -0.5], [-4.0, -0.1], [-5.5, -0.1]):
        ours = asked.params.judge(
            _scored(resp.scores, [30, 20]), torch.tensor(lp0, dtype=torch.float64)
        )
        theirs = verifier(slm, fake).verify(request([30, 20], lp0))
        assert ours.n_accepted == theirs.n_accepted
        assert list(ours.top_k[0]) == theirs.top_k.ids
        verdicts.add(ours.n_accepted)
    assert verdicts == {0, 1, 2}
