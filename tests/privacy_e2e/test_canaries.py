"""End to end: plant canaries and private text in a user's memory, generate with a device model
that copies its context, and check every byte that reached the cloud side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from specsteer import Assistant
from specsteer.cloud_adapter import InProcessVerifier, VerifyRequest, VerifyResponse
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import AuditLog
from specsteer.testing import TINY_WORDS, tiny_backend

from .copying import CopyingBackend
from .wire import ngrams, payload_texts

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


@pytest.fixture
def store(specsteer_home: Path) -> MemoryStore:
    s = MemoryStore(embedder=HashEmbedder())
    for text in PRIVATE:
        s.add("maya", text)
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
    assistant = Assistant(device, cloud, memory=store, user_id="maya", context_tokens=512)
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
