"""The demo's printout, on tiny models: each request, what stayed, what left, the speed."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from specsteer import Assistant, GenerationConfig
from specsteer._demo import (
    DEMO_HISTORY,
    DEMO_REQUESTS,
    DEMO_USER,
    answer_requests,
    prepare_demo_memory,
)
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.memory.testing import InMemoryStore
from specsteer.testing import tiny_backend


def _printout(max_new_tokens: int) -> str:
    store = InMemoryStore()
    store.add_many(DEMO_USER, list(DEMO_HISTORY))
    config = GenerationConfig(seed=0, ignore_eos=True)
    assistant = Assistant.in_process(
        tiny_backend(0), tiny_backend(1), memory=store, user_id=DEMO_USER, config=config
    )
    console = Console(record=True, width=100, color_system=None)
    answer_requests(console, assistant, max_new_tokens=max_new_tokens)
    return console.export_text()


def test_each_request_prints_its_answer_what_stayed_what_left_and_the_speed() -> None:
    out = _printout(6)
    for request in DEMO_REQUESTS:
        assert request in out
    for title in ("kept on the device", "left the device", "speed", "payloads"):
        assert out.count(title) >= len(DEMO_REQUESTS)
    assert out.count("cut at 6 tokens") == len(DEMO_REQUESTS)
    assert f"{6 * len(DEMO_REQUESTS)} tokens in" in out
    assert "audit log" in out and "tokens/s" in out


def test_the_writer_and_the_reader_come_from_the_demo_users_memories() -> None:
    out = _printout(4)
    birthday = out.split("birthday message for my sister")[1].split("left the device")[0]
    assert "Maya Okafor, to Lena (sister)" in birthday
    assert "Maya Okafor" in out.split("birthday message")[0].split("left the device")[0]


def test_the_demo_user_starts_afresh_after_being_forgotten(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    prepare_demo_memory(store)
    store.forget_user(DEMO_USER)
    prepare_demo_memory(store)  # `specsteer memory forget --user demo-maya` broke make demo
    assert store.count(DEMO_USER) == len(DEMO_HISTORY)
