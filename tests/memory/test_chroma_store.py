"""What only the chromadb store promises: persistence, one embedder per collection, keys, purge."""

from __future__ import annotations

from pathlib import Path

import pytest

from specsteer._errors import ConfigurationError
from specsteer.memory import HashEmbedder, Memory, MemoryStore


def test_store_reopens_with_its_data(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    m = store.add("alice", "persisted across restarts")
    store.close()
    again = MemoryStore(embedder=HashEmbedder())
    assert again.get("alice", m.id).text == "persisted across restarts"


def test_embedder_mismatch_is_refused(specsteer_home: Path) -> None:
    MemoryStore(embedder=HashEmbedder(dim=64)).add("alice", "stored with one embedder")
    other = MemoryStore(embedder=HashEmbedder(dim=128))
    with pytest.raises(ConfigurationError, match="same embedder"):
        other.search("alice", "anything")


def test_forget_destroys_the_users_key(embedded_store: MemoryStore) -> None:
    embedded_store.add("alice", "a secret")
    assert embedded_store.keyring.has_key("alice")
    embedded_store.forget_user("alice")
    assert not embedded_store.keyring.has_key("alice")


def test_search_purges_the_expired_rows_it_meets(specsteer_home: Path) -> None:
    now = [1_700_000_000.0]
    store = MemoryStore(embedder=HashEmbedder(), clock=lambda: now[0])
    store.add_many("alice", [f"coffee note {i}" for i in range(10)], ttl=5, progress=False)
    store.add_many("alice", [f"coffee order {i}" for i in range(3)], progress=False)
    now[0] += 6
    assert len(store.search("alice", "coffee note", k=3)) == 3
    assert store.purge_expired() == 0  # the search already purged what it met


def test_replacing_a_row_leaves_no_stale_tag_fields(embedded_store: MemoryStore) -> None:
    old = Memory("b" * 32, "tagged twice", {"a": 1, "b": 2}, 1.0, 1.0, None)
    embedded_store.put_many("alice", [old])
    embedded_store.update("alice", old.id, metadata={"c": 3})
    col = next(c for c in embedded_store._client.list_collections() if c.name.startswith("u-"))
    fields = set(col.get(ids=[old.id], include=["metadatas"])["metadatas"][0])
    # The sealed blob, content tag, version, expiry and turned mark, plus one tag field for "c".
    assert len(fields) == 6
