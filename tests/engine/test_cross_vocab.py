"""Cross-vocabulary mode: text on the wire, segments aligned at shared boundaries."""

from __future__ import annotations

import uuid

import pytest

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer.cloud_adapter import (
    ChatMessage,
    CloudVerifier,
    InProcessVerifier,
    Text,
    VerifierCore,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
)
from specsteer.testing import tiny_backend

PROMPT = build_prompt("what is my plan for friday ?", context="dinner in rome with my sister")
METHODS = ("specsteer", "speculative", "token_fusion")


def _run(device, llm, wire, cfg):  # type: ignore[no-untyped-def]
    sent: list[VerifyRequest] = []

    def send(req: VerifyRequest, cloud: CloudVerifier) -> VerifyResponse:
        sent.append(req)
        return cloud.verify(req)

    decoder = Decoder(device, InProcessVerifier(llm), send=send, wire=wire)
    return decoder.generate(PROMPT, cfg), sent


#: Sampled standard speculative decoding is exact in token-id mode (the cloud's draws of its
#: whole distribution) and uses the top-k correction in text mode, so only it may differ.
MODES = [(m, g) for m in METHODS for g in (True, False) if (m, g) != ("speculative", False)]


@pytest.mark.parametrize(("method", "greedy"), MODES)
@pytest.mark.parametrize(("cloud_seed", "lam"), [(0, 0.5), (1, 1e-3)])
def test_identical_tokenizers_text_mode_equals_id_mode(
    method: str, greedy: bool, cloud_seed: int, lam: float
) -> None:
    device, llm = tiny_backend(0), tiny_backend(cloud_seed)
    for seed in range(3):
        cfg = GenerationConfig(method=method, max_new_tokens=32, greedy=greedy, seed=seed, lam=lam)
        by_ids, ids_sent = _run(device, llm, "ids", cfg)
        by_text, text_sent = _run(device, llm, "text", cfg)
        assert all(r.draft.kind == "ids" for r in ids_sent)
        assert text_sent and all(r.draft.kind == "text" for r in text_sent)
        assert by_text.token_ids == by_ids.token_ids
        assert by_text.stats.rounds == by_ids.stats.rounds


def test_only_token_id_mode_asks_for_the_clouds_draws() -> None:
    """The exact correction of sampled speculative decoding needs draws the cloud can send as
    token ids; text requests ask for none."""
    device, llm = tiny_backend(0), tiny_backend(1)
    cfg = GenerationConfig(method="speculative", max_new_tokens=16, greedy=False, seed=0)
    _, ids_sent = _run(device, llm, "ids", cfg)
    _, text_sent = _run(device, llm, "text", cfg)
    assert {r.params.samples for r in ids_sent} == {32}
    assert {r.params.samples for r in text_sent} == {0}


def test_identical_models_accept_every_draft_in_text_mode() -> None:
    device = tiny_backend(0)
    cfg = GenerationConfig(max_new_tokens=24, greedy=True, lam=0.5)
    result, sent = _run(device, tiny_backend(0), "text", cfg)
    assert result.stats.acceptance_rate == 1.0
    assert all(isinstance(r.prefix, Text) for r in sent)


def test_auto_wire_follows_the_tokenizers() -> None:
    device = tiny_backend(0)
    assert Decoder(device, InProcessVerifier(tiny_backend(1))).wire == "ids"
    assert Decoder(device, InProcessVerifier(tiny_backend(1, family="pieces"))).wire == "text"
    with pytest.raises(Exception, match="wire"):
        Decoder(device, InProcessVerifier(device), wire="bytes")  # type: ignore[arg-type]


def test_differing_tokenizers_greedy_speculative_is_lossless() -> None:
    """Greedy speculative decoding reproduces the cloud model's own greedy text exactly, though
    the device drafts in word pieces and the cloud reads whole words."""
    device = tiny_backend(0, family="pieces")
    llm = tiny_backend(1)
    cfg = GenerationConfig(method="speculative", max_new_tokens=30, greedy=True)
    result, sent = _run(device, llm, "auto", cfg)
    # The limit counts device tokens (pieces); the cloud's own run counts words, so run it
    # longer: the speculative text must be its prefix, to the character.
    reference = Decoder(device, InProcessVerifier(llm)).generate(
        PROMPT, cfg.model_copy(update={"method": "cloud_only", "max_new_tokens": 60})
    )
    assert sent and all(r.draft.kind == "text" for r in sent)
    assert result.stats.fallback is None
    assert reference.text.startswith(result.text)
    assert len(result.text.split()) >= 5


def test_differing_tokenizers_generate_text_both_can_read() -> None:
    device = tiny_backend(0, family="pieces")
    llm = tiny_backend(1)
    words = set(llm.tokenizer.get_vocab())
    for seed in range(3):
        cfg = GenerationConfig(max_new_tokens=40, greedy=False, seed=seed, lam=1e-3)
        result, sent = _run(device, llm, "text", cfg)
        assert result.stats.fallback is None and result.stats.cloud_calls == len(sent) > 0
        assert result.text and all(w in words for w in llm.tokenizer.tokenize(result.text))
        again, _ = _run(device, llm, "text", cfg)
        assert again.token_ids == result.token_ids  # seeded runs reproduce


def _request(
    prefix: str, draft: str, offsets: list[int], *, system: str | None = None, **params: object
) -> VerifyRequest:
    prompt = [ChatMessage(role="user", content="what is my plan for friday ?")]
    if system is not None:
        prompt.insert(0, ChatMessage(role="system", content=system))
    return VerifyRequest(
        request_id=uuid.uuid4().hex,
        prompt=prompt,
        prefix=Text(text=prefix),
        draft=Text(text=draft, offsets=offsets),
        ctxfree_logprobs=[-1.0] * len(offsets),
        params=VerifyParams(**params),  # type: ignore[arg-type]
    )


def _greedy_words(llm, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    cfg = GenerationConfig(method="device_only", max_new_tokens=n, greedy=True, ignore_eos=True)
    result = Decoder(llm, None).generate(
        build_prompt("what is my plan for friday ?", system_prompt="x"), cfg
    )
    return [llm.decode([t]) for t in result.token_ids]


def test_a_wrong_draft_is_rejected_at_the_wrong_word() -> None:
    llm = tiny_backend(1)
    core = VerifierCore(llm)
    words = _greedy_words(llm, 4)
    assert len(words) == 4 and all(words)
    pieces = tiny_backend(0, family="pieces")

    def piece_ends(text: str) -> list[int]:
        """Offsets as the pieces tokenizer cuts the words: several units per word."""
        found = pieces.encode_offsets(text)
        assert found is not None
        return sorted({end for _, end in found[1]})

    draft = " ".join(words)
    offsets = piece_ends(draft)
    ok = core.verify(_request("", draft, offsets, system="x", target="llm", greedy=True, top_k=5))
    assert ok.n_accepted == len(offsets)  # the model's own continuation passes whole
    wrong_word = next(w for w in ("pizza", "sushi", "guitar") if w != words[1])
    bad_text = " ".join([words[0], wrong_word, *words[2:]])
    bad_offsets = piece_ends(bad_text)
    bad = core.verify(
        _request("", bad_text, bad_offsets, system="x", target="llm", greedy=True, top_k=5)
    )
    first_word_units = sum(1 for o in bad_offsets if o <= len(words[0]))
    assert bad.n_accepted == first_word_units
    assert bad.top_k.strings is not None and bad.top_k.strings[0] == " " + words[1]


def test_text_requests_need_ctxfree_logprobs() -> None:
    core = VerifierCore(tiny_backend(1))
    req = _request("", "the plan", [3, 8]).model_copy(update={"ctxfree_logprobs": None})
    with pytest.raises(Exception, match="ctxfree_logprobs"):
        core.verify(req)


def test_end_of_answer_travels_as_a_unit() -> None:
    core = VerifierCore(tiny_backend(1))
    req = VerifyRequest(
        request_id="r1",
        prompt=[ChatMessage(role="user", content="hi")],
        prefix=Text(text="yes"),
        draft=Text(text="", offsets=[], eos=True),
        ctxfree_logprobs=[-0.5],
        params=VerifyParams(lam=0.0, greedy=True),
    )
    assert req.n_draft == 1
    assert core.verify(req).n_accepted == 1  # lam = 0 accepts every judged unit


@pytest.mark.parametrize("method", ["device_only", "specsteer", "cloud_only", "speculative"])
def test_ignore_eos_runs_to_the_length(method: str) -> None:
    device, llm = tiny_backend(0), tiny_backend(1)
    decoder = Decoder(device, InProcessVerifier(llm))
    ended_early = 0
    for seed in range(12):
        cfg = GenerationConfig(method=method, max_new_tokens=50, greedy=False, seed=seed)
        ended_early += decoder.generate(PROMPT, cfg).finish_reason == "eos"
        result = decoder.generate(PROMPT, cfg.model_copy(update={"ignore_eos": True}))
        assert result.stats.new_tokens == 50 and result.finish_reason == "length"
        assert not set(result.token_ids) & device.eos_token_ids
    if method in ("device_only", "cloud_only"):
        assert ended_early  # these seeds do end early when the end token counts


def test_unwritable_candidates_end_in_device_only_decoding() -> None:
    """A cloud whose every candidate is text the device cannot write: no crash, a fallback."""

    class Blank(CloudVerifier):
        def verify(self, request: VerifyRequest) -> VerifyResponse:
            from specsteer.cloud_adapter import TopK

            return VerifyResponse(
                request_id=request.request_id,
                n_accepted=0,
                top_k=TopK(strings=["   "], logprobs=[-0.1]),
            )

    device = tiny_backend(0)
    result = Decoder(device, Blank(), wire="text").generate(
        PROMPT, GenerationConfig(max_new_tokens=12)
    )
    assert result.stats.fallback is not None and "candidates" in result.stats.fallback
    assert result.stats.new_tokens > 0 and result.text


def test_text_mode_over_http_equals_in_process() -> None:
    import secrets

    from specsteer.cloud_adapter import BackgroundServer, HttpVerifier, create_app

    device, llm = tiny_backend(0, family="pieces"), tiny_backend(1)
    token = secrets.token_urlsafe(8)
    server = BackgroundServer(create_app(VerifierCore(llm), token=token)).start()
    cfg = GenerationConfig(max_new_tokens=24, greedy=False, seed=5, lam=1e-3)
    try:
        with HttpVerifier(server.url, token=token) as cloud:
            remote = Decoder(device, cloud, wire="text").generate(PROMPT, cfg)
    finally:
        server.stop()
    local = Decoder(device, InProcessVerifier(llm)).generate(PROMPT, cfg)
    assert remote.stats.fallback is None and remote.stats.cloud_calls > 0
    assert remote.token_ids == local.token_ids


def test_id_requests_name_the_tokenizer_and_a_foreign_cloud_refuses_them() -> None:
    device = tiny_backend(0)
    foreign = tiny_backend(1, family="pieces")
    sent: list[VerifyRequest] = []

    def send(req: VerifyRequest, cloud: CloudVerifier) -> VerifyResponse:
        sent.append(req)
        return cloud.verify(req)

    # Forced into id mode against a cloud of another family: refused, not misread.
    decoder = Decoder(device, InProcessVerifier(foreign), send=send, wire="ids")
    result = decoder.generate(PROMPT, GenerationConfig(max_new_tokens=8))
    assert sent[0].tokenizer == device.tokenizer_fingerprint()
    assert result.stats.fallback is not None and "wire='text'" in result.stats.fallback
    assert result.stats.new_tokens == 8  # finished on the device
    # The same family accepts them; text requests carry no fingerprint.
    ok, ok_sent = _run(device, tiny_backend(1), "ids", GenerationConfig(max_new_tokens=8))
    assert ok.stats.fallback is None and ok_sent[0].tokenizer is not None
    _, text_sent = _run(device, foreign, "text", GenerationConfig(max_new_tokens=8))
    assert all(r.tokenizer is None for r in text_sent)
