"""End to end: plant canaries and private text in a user's memory, generate with a device model
that copies its context, and check every byte that reached the cloud side."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specsteer import DEFAULT_SYSTEM_PROMPT, Assistant, PrivateEgress
from specsteer.cloud_adapter import InProcessVerifier, VerifyRequest, VerifyResponse
from specsteer.memory import HashEmbedder, MemoryStore, Person, Persona
from specsteer.privacy import AuditLog, EgressPolicy
from specsteer.testing import TINY_WORDS, tiny_backend

from .copying import CopyingBackend
from .wire import ngrams, payload_texts


def guard_only(device: object) -> PrivateEgress:
    """The egress door without the context-lift policy: these tests put the guard's screen under
    test, which the policy would spare by keeping the copied rounds on the device first
    (tests/engine/test_lift.py tests the policy)."""
    return PrivateEgress(
        policy=EgressPolicy(max_context_lift=None),
        decode_ids=device.decode,  # type: ignore[attr-defined]
    )


CANARIES = ("canary7f3q9x", "canary2k8w4m")
PRIVATE = (
    f"my locker code is {CANARIES[0]} and i keep it in the office near the garden door",
    f"my sister knows the secret word {CANARIES[1]} that opens the box at home",
)
WORDS = (
    *TINY_WORDS,
    "locker",
    "code",
    "keep",
    "near",
    "door",
    "secret",
    "word",
    "opens",
    "box",
    *CANARIES,
)


class Spy(InProcessVerifier):
    """The cloud side: records the exact request bytes it receives."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.received: list[bytes] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        self.received.append(wire)
        return super().transmit(request, wire)


def check_no_leak(received: list[bytes], decode: object, private: tuple[str, ...]) -> None:
    assert received, "nothing reached the cloud side"
    private_grams = set().union(*(ngrams(p, 8) for p in private))
    for wire in received:
        for canary in CANARIES:
            assert canary.encode() not in wire
        text = payload_texts(wire, decode)
        for canary in CANARIES:
            assert canary not in text
        assert not (ngrams(text, 8) & private_grams), "an 8-gram of the private context left"


#: Who the user is: loaded for every test here, so each runs with a persona in the device prompt.
PERSONA_CANARIES = ("canary5p1z8r", "canary9t4v2w")
PERSONA = Persona(
    name=f"Maya {PERSONA_CANARIES[0]}",
    sign_off="Love, Maya",
    people=(Person(PERSONA_CANARIES[1], "sister"),),
)


@pytest.fixture
def store(specsteer_home: Path) -> MemoryStore:
    s = MemoryStore(embedder=HashEmbedder())
    for text in PRIVATE:
        s.add("maya", text)
    s.set_persona("maya", PERSONA)
    return s


#: The cloud model's tokenizer: the device's own (token ids travel), or another family (text).
FAMILIES = pytest.mark.parametrize("family", ["words", "pieces"])


@FAMILIES
def test_copying_device_leaks_nothing_and_user_still_gets_the_text(
    store: MemoryStore, family: str
) -> None:
    base = tiny_backend(0, words=WORDS)
    script = " ".join(PRIVATE)
    device = CopyingBackend(base, script)
    cloud = Spy(tiny_backend(1, words=WORDS, family=family))  # type: ignore[arg-type]
    assistant = Assistant(
        device, cloud, memory=store, user_id="maya", context_tokens=512, privacy=guard_only(base)
    )
    assert assistant.decoder.wire == ("ids" if family == "words" else "text")
    # Fixed four-token drafts: the copied notes then come in drafts long enough to carry a
    # canary, so the rounds the guard keeps local are the ones under test.
    result = assistant.generate(
        "what is my locker code ?", max_new_tokens=48, lam=0.05, adaptive_draft=False
    )

    check_no_leak(cloud.received, base.decode, PRIVATE)
    # The user sees the private text the device wrote, canaries included.
    assert CANARIES[0] in result.text
    report = result.privacy
    assert report is not None and report.spans_kept_local > 0
    assert result.stats.local_rounds > 0
    assert report.payloads == len(cloud.received) == result.stats.cloud_calls
    # Every payload is in the audit log, which verifies.
    log = AuditLog()
    records = list(log.records())
    assert len(records) == len(cloud.received)
    assert all(log.read_payload(r) in cloud.received for r in records)
    assert log.verify().ok


@FAMILIES
def test_without_the_guard_the_same_run_would_leak(store: MemoryStore, family: str) -> None:
    """The check above can fail: with privacy off the copying model's drafts carry the canary."""
    base = tiny_backend(0, words=WORDS)
    device = CopyingBackend(base, " ".join(PRIVATE))
    cloud = Spy(tiny_backend(1, words=WORDS, family=family))  # type: ignore[arg-type]
    assistant = Assistant(
        device, cloud, memory=store, user_id="maya", context_tokens=512, privacy=False
    )
    assistant.generate("what is my locker code ?", max_new_tokens=48, lam=0.05)
    with pytest.raises(AssertionError):
        check_no_leak(cloud.received, base.decode, PRIVATE)


def test_pii_in_the_query_is_pseudonymized_and_restored(store: MemoryStore) -> None:
    base = tiny_backend(0, words=WORDS)
    cloud = Spy(tiny_backend(1, words=WORDS))
    assistant = Assistant(base, cloud, memory=store, user_id="maya")
    result = assistant.generate("call me at +31 6 1234 5678 about the trip", max_new_tokens=6)
    assert cloud.received
    for wire in cloud.received:
        assert not re.search(rb"1234\s*5678", wire)
        assert b"[PHONE_1]" in wire
    assert result.privacy is not None and result.privacy.detectors_fired.get("PHONE_NUMBER", 0) >= 1


@pytest.mark.parametrize(
    "method", ["specsteer", "speculative", "token_fusion", "device_only", "cloud_only"]
)
def test_placeholders_stay_on_the_wire(store: MemoryStore, method: str) -> None:
    """Rounds kept on the device put placeholders in what the cloud sees, never in the answer."""
    base = tiny_backend(0, words=WORDS)
    device = CopyingBackend(base, " ".join(PRIVATE))
    cloud = Spy(tiny_backend(1, words=WORDS))
    assistant = Assistant(device, cloud, memory=store, user_id="maya", context_tokens=512)
    result = assistant.generate("what is my locker code ?", max_new_tokens=48, method=method)
    assert "PRIVATE_" not in result.text and "[" not in result.text
    if method == "specsteer":  # the guard did act: rounds were kept, placeholders were sent
        assert result.stats.local_rounds > 0


QUERY_TO_SISTER = "write a note to my sister about the box"


def copy_the_private_context(store: MemoryStore, *, privacy: bool) -> tuple[str, Spy, object, str]:
    """Generate with a device that copies its whole private context (the persona lines, whom
    the request is for, the memories as rendered); returns (block, cloud, decode, answer)."""
    probe = Assistant(tiny_backend(0, words=WORDS), memory=store, user_id="maya")
    block = probe.private_context(QUERY_TO_SISTER).render()
    assert PERSONA_CANARIES[1] in block and PERSONA.name in block and PRIVATE[1] in block
    words = (*WORDS, *sorted(set(re.findall(r"\w+", block)) - set(WORDS)))
    base = tiny_backend(0, words=words)
    cloud = Spy(tiny_backend(1, words=words))
    assistant = Assistant(
        CopyingBackend(base, block),
        cloud,
        memory=store,
        user_id="maya",
        context_tokens=512,
        privacy=guard_only(base) if privacy else False,
    )
    result = assistant.generate(QUERY_TO_SISTER, max_new_tokens=128, lam=0.05, adaptive_draft=False)
    assert cloud.received
    return block, cloud, base.decode, result.text


def check_context_stays(received: list[bytes], decode: object, block: str) -> None:
    block_grams = ngrams(block, 8)
    for wire in received:
        text = payload_texts(wire, decode)
        for canary in (*PERSONA_CANARIES, *CANARIES):
            assert canary.encode() not in wire and canary not in text
        assert not (ngrams(text, 8) & block_grams), "an 8-gram of the private context left"
        assert json.loads(wire)["prompt"] == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": QUERY_TO_SISTER},
        ]


def test_the_persona_block_and_rendered_memories_never_leave(store: MemoryStore) -> None:
    """None of the private context reaches the cloud, and the public prompt the cloud sees is
    the request alone."""
    block, cloud, decode, answer = copy_the_private_context(store, privacy=True)
    check_context_stays(cloud.received, decode, block)
    assert PERSONA_CANARIES[1] in answer  # the device wrote it for the user


def test_without_the_guard_the_private_context_would_leave(store: MemoryStore) -> None:
    """The check above can fail: unscreened, the copying device's drafts carry the persona."""
    block, cloud, decode, _ = copy_the_private_context(store, privacy=False)
    with pytest.raises(AssertionError):
        check_context_stays(cloud.received, decode, block)


def test_a_signed_answer_sent_back_in_the_chat_is_screened(store: MemoryStore) -> None:
    """The device signs a text to a person with the persona's sign-off after the last round; when
    an app sends that answer back in the chat, the next request's prompt is screened like any
    private text, so the sign-off does not reach the cloud (without the guard it would)."""
    canary = "canary3s8n1q"
    store.set_persona(
        "maya", Persona(name=PERSONA.name, sign_off=f"Love, {canary}", people=PERSONA.people)
    )
    words = (*WORDS, canary)
    base = tiny_backend(0, words=words)
    chat = [
        {"role": "user", "content": QUERY_TO_SISTER},
        {"role": "assistant", "content": f"see you at home tomorrow\n\nLove, {canary}"},
        {"role": "user", "content": "write a note to my sister about dinner"},
    ]
    leaked = {}
    for guarded in (True, False):
        cloud = Spy(tiny_backend(1, words=words))
        privacy = guard_only(base) if guarded else False
        Assistant(base, cloud, memory=store, user_id="maya", privacy=privacy).generate(
            chat, max_new_tokens=8
        )
        assert cloud.received
        leaked[guarded] = any(
            canary.encode() in w or canary in payload_texts(w, base.decode) for w in cloud.received
        )
    assert not leaked[True] and leaked[False]
