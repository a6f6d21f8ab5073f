"""The decoding pyramid on tiny models built in code: limits, equivalences, determinism, faults."""

from __future__ import annotations

import pytest
import torch

from specsteer import (
    Assistant,
    CloudError,
    ConfigurationError,
    Decoder,
    GenerationConfig,
    InvalidInputError,
    build_prompt,
)
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import (
    CloudVerifier,
    ForwardingVerifier,
    InProcessVerifier,
    TopK,
    VerifyRequest,
    VerifyResponse,
)

QUERY = "what is my plan for friday ?"
CONTEXT = "my sister and i have dinner in rome on friday evening . i love pasta and wine"


def generate(device, cloud, method="specsteer", context=CONTEXT, **kw):
    decoder = Decoder(device, cloud)
    cfg = GenerationConfig(method=method, **{"max_new_tokens": 24, **kw})
    return decoder.generate(build_prompt(QUERY, context), cfg)


def plain_greedy(backend: TransformersBackend, messages, n: int) -> list[int]:
    """Reference decoding: full re-encode each step (no cache), argmax."""
    ids = backend.encode_chat(messages)
    out: list[int] = []
    for _ in range(n):
        logits, _ = backend.forward(ids + out, None)
        tok = int(torch.argmax(logits[-1]))
        out.append(tok)
        if tok in backend.eos_token_ids:
            break
    return out


def test_greedy_equivalence_identical_models_no_context(slm, slm_copy) -> None:
    """Identical SLM and LLM, no context: SpecSteer greedy == plain greedy, every draft accepted."""
    result = generate(slm, InProcessVerifier(slm_copy), context="", max_new_tokens=30)
    prompt = build_prompt(QUERY, "")
    assert list(result.token_ids) == plain_greedy(slm, prompt.public_dicts(), 30)
    assert result.stats.drafted_tokens > 0
    assert result.stats.accepted_tokens == result.stats.drafted_tokens
    assert all(r.accepted == r.drafted for r in result.stats.rounds)


def test_lam_zero_without_bonus_equals_device_only(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), lam=0.0, bonus_token=False)
    device = generate(slm, None, method="device_only")
    assert spec.token_ids == device.token_ids
    assert spec.stats.acceptance_rate == 1.0
    assert all(not r.recovered for r in spec.stats.rounds)


def test_lam_zero_sampled_equals_device_only_sampled(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), lam=0.0, bonus_token=False, greedy=False, seed=7)
    device = generate(slm, None, method="device_only", greedy=False, seed=7)
    assert spec.token_ids == device.token_ids


def test_lam_infinite_equals_token_level_fusion(slm, llm) -> None:
    spec = generate(slm, InProcessVerifier(llm), lam=1e30)
    fused = generate(slm, InProcessVerifier(llm), method="token_fusion")
    assert spec.token_ids == fused.token_ids
    assert spec.stats.accepted_tokens == 0
    assert fused.stats.cloud_calls == fused.stats.new_tokens


def test_token_fusion_matches_formula_step_by_step(slm, llm) -> None:
    """Every token = argmax over the cloud's top-k of log P_L + beta (log P_S - log P_S0), the
    private term steering only candidates the context-free model ranks in its own top-k (the
    others share the lowest ranked lift, or zero when that is higher)."""
    res = generate(slm, InProcessVerifier(llm), method="token_fusion", max_new_tokens=8, beta=1.5)
    prompt = build_prompt(QUERY, CONTEXT)
    priv, pub = slm.encode_chat(prompt.private_dicts()), slm.encode_chat(prompt.public_dicts())
    cloud = llm.encode_chat(prompt.public_dicts())
    out: list[int] = []
    for _ in range(8):
        lp_l = torch.log_softmax(llm.forward(cloud + out, None)[0][-1], -1)
        lp_s = torch.log_softmax(slm.forward(priv + out, None)[0][-1], -1)
        lp_s0 = torch.log_softmax(slm.forward(pub + out, None)[0][-1], -1)
        support = torch.topk(lp_l, 20).indices
        ranked = lp_s0[support] >= torch.topk(lp_s0, 20).values[-1]
        lift = (lp_s - lp_s0)[support]
        shared = min(0.0, float(lift[ranked].min())) if bool(ranked.any()) else 0.0
        scores = lp_l[support] + 1.5 * torch.where(ranked, lift, shared)
        out.append(int(support[torch.argmax(scores)]))
        if out[-1] in slm.eos_token_ids:
            break
    assert list(res.token_ids) == out


def test_speculative_greedy_is_lossless(slm, llm) -> None:
    """Standard speculative decoding reproduces the cloud model's own greedy output."""
    spec = generate(slm, InProcessVerifier(llm), method="speculative", max_new_tokens=30)
    cloud = generate(slm, InProcessVerifier(llm), method="cloud_only", max_new_tokens=30)
    assert spec.token_ids == cloud.token_ids
    prompt = build_prompt(QUERY, CONTEXT)
    assert list(cloud.token_ids) == plain_greedy(llm, prompt.public_dicts(), 30)


def test_seeded_runs_are_reproducible(slm, llm) -> None:
    for method in ("specsteer", "token_fusion", "speculative", "device_only"):
        a = generate(slm, InProcessVerifier(llm), method=method, greedy=False, seed=11)
        b = generate(slm, InProcessVerifier(llm), method=method, greedy=False, seed=11)
        assert a.token_ids == b.token_ids, method
    outs = {generate(slm, InProcessVerifier(llm), greedy=False, seed=s).token_ids for s in range(6)}
    assert len(outs) > 1, "different seeds should give different samples"


def test_ctxfree_from_cloud_copy_equals_device_sent(slm, llm, slm_copy) -> None:
    for greedy in (True, False):
        sent = generate(slm, InProcessVerifier(llm), greedy=greedy, seed=3, lam=0.9)
        hosted = generate(
            slm,
            InProcessVerifier(llm, slm=slm_copy),
            greedy=greedy,
            seed=3,
            lam=0.9,
            ctxfree_source="cloud",
        )
        assert sent.token_ids == hosted.token_ids
    assert hosted.stats.bytes_sent < sent.stats.bytes_sent


def test_ctxfree_from_cloud_needs_a_hosted_copy(slm, llm) -> None:
    res = generate(slm, InProcessVerifier(llm), ctxfree_source="cloud")
    assert res.stats.fallback is not None and "ctxfree_logprobs" in res.stats.fallback


def test_private_context_never_in_requests(slm, llm) -> None:
    """The prompt on the wire holds none of the context; the token ids of the accepted text and
    the draft, decoded, hold no run of it (the drafts are written with it: that is the method)."""
    seen: list[VerifyRequest] = []

    class Spy(InProcessVerifier):
        def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
            seen.append(VerifyRequest.model_validate_json(wire))
            return super().transmit(request, wire)

    generate(slm, Spy(llm))
    assert seen and all(r.prefix.kind == r.draft.kind == "ids" for r in seen)
    context = CONTEXT.split()
    runs = {" ".join(context[i : i + 4]) for i in range(len(context) - 3)}
    for request in seen:
        prompt = " ".join(m.content for m in request.prompt)
        assert QUERY in prompt and not {"rome", "sister", "pasta"} & set(prompt.split())
        answer = slm.decode([*request.prefix.ids, *request.draft.ids])  # type: ignore[union-attr]
        assert not any(run in answer for run in runs)


def test_cost_per_token_stays_flat(slm, llm) -> None:
    """The KV caches are cropped, never re-encoded: tokens computed grow linearly with output."""
    costs = {}
    for n in (16, 64):
        decoder = Decoder(slm, InProcessVerifier(llm))
        prompt = build_prompt(QUERY, CONTEXT)
        res = decoder.generate(prompt, GenerationConfig(max_new_tokens=n, lam=0.9))
        assert res.stats.new_tokens == n or res.finish_reason == "eos"
        prompt_len = len(slm.encode_chat(prompt.private_dicts()))
        computed = decoder._private.tokens_computed - prompt_len
        costs[n] = computed / res.stats.new_tokens
    # Each output token costs at most a few device forward tokens, at any length.
    assert costs[64] <= costs[16] * 1.5 + 1
    assert costs[64] < 8


class Failing(CloudVerifier):
    def __init__(self, fail_after: int, error: Exception) -> None:
        self.calls = 0
        self.fail_after = fail_after
        self.error = error
        self.inner: CloudVerifier | None = None

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        self.calls += 1
        if self.calls > self.fail_after:
            raise self.error
        assert self.inner is not None
        return self.inner.verify(request)


def test_cloud_failure_falls_back_to_device_only(slm, llm) -> None:
    failing = Failing(fail_after=2, error=CloudError("connection refused"))
    failing.inner = InProcessVerifier(llm)
    res = generate(slm, failing, max_new_tokens=20)
    assert res.stats.new_tokens == 20 or res.finish_reason == "eos"
    assert res.stats.fallback is not None and "connection refused" in res.stats.fallback
    assert failing.calls == 3  # no further calls once the session went device-only


def test_out_of_range_response_is_rejected_before_decoding(slm, llm) -> None:
    class Liar(InProcessVerifier):
        def verify(self, request: VerifyRequest) -> VerifyResponse:
            good = super().verify(request)
            return VerifyResponse(
                request_id=good.request_id,
                n_accepted=request.n_draft + 3,
                top_k=TopK(ids=[10**6], logprobs=[-0.1]),
            )

    res = generate(slm, Liar(llm))
    assert res.stats.fallback is not None and "exceeds the draft" in res.stats.fallback
    device = generate(slm, None, method="device_only")
    assert res.token_ids == device.token_ids


def test_assistant_facade(slm, llm) -> None:
    assistant = Assistant.in_process(slm, llm)
    streamed: list[int] = []
    res = assistant.generate(QUERY, context=CONTEXT, max_new_tokens=12, on_tokens=streamed.extend)
    assert res.text and res.stats.method == "specsteer"
    assert streamed == [t for t in res.token_ids if t not in slm.eos_token_ids]
    with pytest.raises(ConfigurationError):
        assistant.generate(QUERY, lam=-1)
    with pytest.raises(ConfigurationError):
        assistant.generate(QUERY, not_a_setting=1)
    with pytest.raises(ConfigurationError, match="temperature: Input should be a finite number"):
        assistant.generate(QUERY, temperature=float("nan"))
    with pytest.raises(InvalidInputError):
        assistant.generate("   ")
    with pytest.raises(InvalidInputError):
        assistant.generate([{"role": "user"}])
    with pytest.raises(ConfigurationError):
        Assistant(slm).generate(QUERY)  # specsteer needs a cloud
    local = Assistant(slm).generate(QUERY, method="device_only", max_new_tokens=4)
    assert local.stats.method == "device_only" and local.stats.cloud_calls == 0
    assert 0 < len(local.token_ids) <= 4 and local.text == slm.decode(local.token_ids)


def test_a_request_the_memory_store_would_refuse_is_still_answered() -> None:
    # Longer than a memory may be, or with a NUL: the memories are searched with what of it
    # the store takes. A lone surrogate is no text at all: a typed error, before any search.
    from specsteer.memory.testing import InMemoryStore
    from specsteer.testing import tiny_backend

    store = InMemoryStore()
    store.add("maya", "my sister lena lives in lisbon")
    assistant = Assistant(tiny_backend(0), memory=store, user_id="maya")
    for query in ("where does my sister live ? " * 400, "hi \x00 there", "\x00"):
        assert assistant.generate(query, method="device_only", max_new_tokens=2).token_ids
    for bad in ("hi \ud800", [{"role": "user", "content": "hi \udfff"}]):
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            assistant.generate(bad, method="device_only", max_new_tokens=2)


def test_an_audit_log_that_cannot_be_written_ends_the_cloud_rounds_visibly(
    slm, llm, tmp_path
) -> None:
    from specsteer import PrivateEgress
    from specsteer.privacy import AuditLog, AuditLogError

    log = AuditLog(tmp_path / "audit.jsonl")

    def full_disk(**_: object) -> object:
        raise AuditLogError("the audit record could not be written: [Errno 28] No space left")

    log.append = full_disk  # type: ignore[method-assign]
    door = PrivateEgress(audit_log=log, decode_ids=slm.decode)
    result = Assistant.in_process(slm, llm, privacy=door).generate(QUERY, max_new_tokens=6)
    assert result.token_ids  # answered on the device
    assert result.stats.fallback is not None and "AuditLogError" in result.stats.fallback
    assert result.privacy is not None and result.privacy.payloads_refused == 1
    assert result.stats.cloud_calls == 0


def test_fit_chat_drops_the_oldest_turns_first() -> None:
    from specsteer._prompt import fit_chat

    chat = [
        {"role": "system", "content": "be kind"},
        *[
            {"role": role, "content": f"{role} turn {i} " + "x" * 40}
            for i in range(4)
            for role in ("user", "assistant")
        ],
        {"role": "user", "content": "the last question"},
    ]

    def count(messages: list) -> int:
        return sum(len(m["content"]) for m in messages)

    assert fit_chat(chat, count(chat), count) == chat  # it fits: whole
    fitted = fit_chat(chat, 250, count)
    assert fitted[0] == chat[0] and fitted[-1] == chat[-1]  # the system and the last stay
    assert fitted[1]["role"] == "user" and count(fitted) <= 250
    assert fitted[1:] == chat[-len(fitted) + 1 :]  # the newest turns, in order
    assert fit_chat(chat, 1, count) == [chat[0], chat[-1]]  # at least the request


def test_a_chat_longer_than_the_device_context_loses_its_oldest_turns(slm, llm) -> None:
    assistant = Assistant.in_process(slm, llm)
    prompts = []
    generate = assistant.decoder.generate

    def spy(prompt, config, **kwargs):  # type: ignore[no-untyped-def]
        prompts.append(prompt)
        return generate(prompt, config, **kwargs)

    assistant.decoder.generate = spy  # type: ignore[method-assign]
    chat = [
        {"role": role, "content": f"{role} {i} " + "what is my plan for friday ? " * 20}
        for i in range(12)
        for role in ("user", "assistant")
    ] + [{"role": "user", "content": QUERY}]
    whole, own = len(slm.encode_chat(chat)), slm.context_limit
    slm.context_limit = whole  # the chat fits, the answer and the context would not
    try:
        assistant.generate(chat, context=CONTEXT, max_new_tokens=8)
    finally:
        slm.context_limit = own
    sent = [m.content for m in prompts[0].public]
    assert sent[-1] == QUERY and not any(c.startswith("user 0 ") for c in sent)
    assert any(c.startswith("assistant 11 ") for c in sent)


def test_chat_history_and_system_prompt() -> None:
    p = build_prompt(
        [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
        "secret note",
    )
    assert p.public[0].content == "be kind"
    assert "secret note" in p.private[0].content and "secret note" not in p.public[0].content


def test_request_ids_can_never_trigger_a_detector() -> None:
    """Generated ids hold no digits, so no card, phone or account detector can fire on them."""
    from specsteer._link import request_id as _request_id
    from specsteer.privacy._detectors import detect

    ids = [_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and i.isalpha() and i.islower() for i in ids)
    assert not [i for i in ids[:2_000] if detect(i)]


def test_runtimes_name_what_computes_each_side(slm, llm) -> None:
    local = Decoder(slm, InProcessVerifier(llm))
    assert local.runtimes == "device on transformers (float32), cloud on transformers (float32)"
    # Behind a wrapper the cloud's model is not known here: the verifier is named instead.
    wrapped = Decoder(slm, ForwardingVerifier(InProcessVerifier(llm)))
    assert wrapped.runtimes == "device on transformers (float32), cloud on in-process verifier"
