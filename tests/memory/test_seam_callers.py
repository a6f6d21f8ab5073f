"""The SDK needs nothing from a memory store beyond the seam: the assistant runs on the fake."""

from __future__ import annotations

from specsteer import Assistant
from specsteer.memory.testing import InMemoryStore
from specsteer.testing import tiny_backend


def test_assistant_remembers_and_retrieves_through_the_fake() -> None:
    store = InMemoryStore()
    assistant = Assistant(tiny_backend(0), memory=store, user_id="maya", privacy=False)
    memory_id = assistant.remember("maya keeps bees on her roof", topic="hobby")
    assert store.get("maya", memory_id).metadata == {"topic": "hobby"}
    assert "maya keeps bees on her roof" in assistant.retrieve("who keeps bees?")
    other = Assistant(tiny_backend(0), memory=store, user_id="noor", privacy=False)
    assert other.retrieve("who keeps bees?") == ""
