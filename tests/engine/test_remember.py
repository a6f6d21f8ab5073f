"""Memory from the conversation: the user's statements stay on the device, then are stored once
the turn is answered; never the assistant's words; de-duplicated; TTL and forget apply."""

from __future__ import annotations

from typing import Any

import pytest

from specsteer import Assistant, ConfigurationError, RememberPolicy
from specsteer.cloud_adapter import InProcessVerifier, VerifyRequest, VerifyResponse
from specsteer.memory.testing import InMemoryStore
from specsteer.testing import TINY_WORDS, tiny_backend

CANARY = "canary5r7k2p"
WORDS = (*TINY_WORDS, "locker", "code", CANARY)


class Spy(InProcessVerifier):
    """The cloud side: keeps every request's wire bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[bytes] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        self.received.append(wire)
        return super().transmit(request, wire)


class PromptSpy:
    """Records the chats the device model is asked to encode (its private view included)."""

    def __init__(self, backend: Any) -> None:
        self.prompts: list[str] = []
        encode_chat = backend.encode_chat

        def spy(messages: Any, **kwargs: Any) -> Any:
            self.prompts.append("\n".join(m["content"] for m in messages))
            return encode_chat(messages, **kwargs)

        backend.encode_chat = spy


def make(store: InMemoryStore, **kwargs: Any) -> tuple[Assistant, Spy, PromptSpy]:
    device = tiny_backend(0, words=WORDS)
    cloud = Spy(tiny_backend(1, words=WORDS))
    prompts = PromptSpy(device)
    a = Assistant(device, cloud, memory=store, user_id="maya", remember=True, **kwargs)
    return a, cloud, prompts


def test_a_statement_is_kept_on_the_device_then_stored() -> None:
    store = InMemoryStore()
    a, cloud, prompts = make(store)
    told = f"my locker code is {CANARY} . what is my plan for friday ?"
    result = a.generate(told, max_new_tokens=8)

    assert result.remembered == (f"My locker code is {CANARY} .",)
    assert store.all_texts("maya") == [f"My locker code is {CANARY} ."]
    mem = store.memories("maya")[0]
    assert mem.metadata == {"source": "conversation"} and mem.expires_at is None
    # The cloud saw the question, never the statement; the device's private view had it.
    assert cloud.received and all(CANARY.encode() not in wire for wire in cloud.received)
    assert any(b"what is my plan for friday" in wire for wire in cloud.received)
    assert any(CANARY in p for p in prompts.prompts)


def test_told_again_it_is_stored_once_and_not_reported_again() -> None:
    store = InMemoryStore()
    a, _, _ = make(store)
    first = a.generate("i am in rome .", max_new_tokens=4)
    again = a.generate("I  am in ROME . where is the box ?", max_new_tokens=4)
    assert first.remembered == ("I am in rome .",)
    assert again.remembered == ()
    assert store.count("maya") == 1


def test_the_assistants_words_and_earlier_turns_are_not_stored() -> None:
    store = InMemoryStore()
    a, cloud, _ = make(store)
    chat = [
        {"role": "user", "content": f"my locker code is {CANARY} ."},
        {"role": "assistant", "content": "i am the assistant and i keep the box ."},
        {"role": "user", "content": "what is my plan for friday ?"},
    ]
    result = a.generate(chat, max_new_tokens=4)
    # Only the last user message is the turn being answered; it holds no statement.
    assert result.remembered == () and store.count("maya") == 0
    # An earlier statement still never leaves: it is taken out of every user message.
    assert all(CANARY.encode() not in wire for wire in cloud.received)


def test_ttl_applies_to_remembered_statements() -> None:
    now = [1_000.0]
    store = InMemoryStore(clock=lambda: now[0])
    a, _, _ = make(store, context_tokens=256)
    a.remembering = RememberPolicy(ttl=60)
    a.generate("i am in rome .", max_new_tokens=4)
    assert store.memories("maya")[0].expires_at == pytest.approx(1_060.0)
    now[0] += 61
    assert store.count("maya") == 0


def test_a_forgotten_user_is_not_remembered_again() -> None:
    store = InMemoryStore()
    a, _, _ = make(store)
    store.add("maya", "my dog is called rex")
    store.forget_user("maya")
    result = a.generate("i am in rome . what is the plan ?", max_new_tokens=4)
    assert result.remembered == () and result.text is not None
    store.reinstate_user("maya")
    assert store.count("maya") == 0


def test_a_failed_turn_stores_nothing() -> None:
    store = InMemoryStore()
    a, _, _ = make(store)
    with pytest.raises(ConfigurationError):
        a.generate("i am in rome .", max_new_tokens=4, lam=-1)
    assert store.count("maya") == 0


def test_without_remember_nothing_is_stored_and_the_query_is_sent_as_it_is() -> None:
    store = InMemoryStore()
    device = tiny_backend(0, words=WORDS)
    cloud = Spy(tiny_backend(1, words=WORDS))
    a = Assistant(device, cloud, memory=store, user_id="maya")
    result = a.generate("i am in rome . what is the plan ?", max_new_tokens=4)
    assert result.remembered == () and store.count("maya") == 0
    assert any(b"i am in rome" in wire for wire in cloud.received)


def test_remember_needs_a_memory_store() -> None:
    with pytest.raises(ConfigurationError, match="memory"):
        Assistant(tiny_backend(0), remember=True)
