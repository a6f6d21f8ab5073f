"""Fixtures for the evaluation tests: tiny models and a memory store with the hashing embedder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from specsteer.backends import ModelBackend
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import Keyring
from specsteer.testing import tiny_backend


def hashed_memory(root: Path) -> MemoryStore:
    """An embedded store under ``root`` that embeds by hashing (no model to load)."""
    return MemoryStore(root / "memory", embedder=HashEmbedder(), keyring=Keyring(root / "keys"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run single-threaded: their matrices are too small to share out, and on a busy
    machine handing each one to several threads makes the run many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_pair() -> tuple[ModelBackend, ModelBackend]:
    """(device, cloud): two different tiny models with the same tokenizer."""
    return tiny_backend(0), tiny_backend(1)


@pytest.fixture
def memory_factory() -> Callable[[Path], MemoryStore]:
    return hashed_memory
