"""Bad input gets a typed error whose message names the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from specsteer._errors import ConfigurationError, InvalidInputError, MemoryStoreError
from specsteer.memory import BaseMemoryStore, HashEmbedder, MemoryStore, Persona
from specsteer.memory.testing import InMemoryStore
from specsteer.privacy import KeyringCorruptedError

Call = Callable[[BaseMemoryStore], Any]
StoreFactory = Callable[..., BaseMemoryStore]

CASES: list[tuple[str, Call, str]] = [
    ("empty text", lambda s: s.add("alice", ""), "empty or blank"),
    ("blank text", lambda s: s.add("alice", " \n\t "), "empty or blank"),
    ("oversize text", lambda s: s.add("alice", "x" * 101), "split it with"),
    ("NUL in text", lambda s: s.add("alice", "a\x00b"), "NUL"),
    ("text not str", lambda s: s.add("alice", b"bytes"), "must be a str"),
    ("text is None", lambda s: s.add("alice", None), "must be a str"),
    ("empty user id", lambda s: s.add("", "x"), "non-empty"),
    ("user id with slash", lambda s: s.add("../etc", "x"), "letters, digits"),
    ("user id too long", lambda s: s.add("a" * 129, "x"), "at most 128"),
    ("user id not str", lambda s: s.add(42, "x"), "must be a str"),
    ("user id None", lambda s: s.search(None, "x"), "must be a str"),
    ("reserved user id", lambda s: s.add("specsteer.memory-index", "x"), "reserved"),
    ("metadata not a mapping", lambda s: s.add("alice", "x", ["a"]), "must be a mapping"),
    ("metadata nested value", lambda s: s.add("alice", "x", {"a": [1]}), "encode lists"),
    ("metadata None value", lambda s: s.add("alice", "x", {"a": None}), "use str, int"),
    ("metadata NaN", lambda s: s.add("alice", "x", {"a": float("nan")}), "finite"),
    ("metadata key not str", lambda s: s.add("alice", "x", {1: "a"}), "non-empty str"),
    (
        "too many metadata keys",
        lambda s: s.add("alice", "x", {str(i): i for i in range(33)}),
        "limit",
    ),
    ("negative ttl", lambda s: s.add("alice", "x", ttl=-1), "positive number"),
    ("ttl as text", lambda s: s.add("alice", "x", ttl="1h"), "positive number"),
    ("k zero", lambda s: s.search("alice", "x", k=0), "k must be"),
    ("k as float", lambda s: s.search("alice", "x", k=2.0), "k must be"),
    ("min_score out of range", lambda s: s.search("alice", "x", min_score=2), "min_score"),
    ("empty query", lambda s: s.search("alice", ""), "query is empty.*to search for"),
    ("oversize query", lambda s: s.search("alice", "x" * 101), "search with a shorter text"),
    ("lone surrogate in text", lambda s: s.add("alice", "caf\udce9"), "text holds '.udce9'"),
    ("lone surrogate in query", lambda s: s.search("alice", "caf\udce9"), "query holds"),
    (
        "lone surrogate in a metadata value",
        lambda s: s.add("alice", "x", {"place": "caf\udce9"}),
        "metadata value for 'place' holds",
    ),
    (
        "lone surrogate in a metadata key",
        lambda s: s.add("alice", "x", {"\ud800": 1}),
        "valid UTF-8",
    ),
    (
        "lone surrogate in a filter",
        lambda s: s.search("alice", "x", where={"place": "caf\udce9"}),
        "lone surrogate",
    ),
    (
        "lone surrogate in the persona",
        lambda s: s.set_persona("alice", Persona(sign_off="Cheers, Jos\udce9")),
        "sign_off holds",
    ),
    (
        "lone surrogate in notes",
        lambda s: s.ingest_notes("alice", "caf\udce9 au lait"),
        "lone surrogate",
    ),
    ("where not a dict", lambda s: s.search("alice", "x", where="topic"), "non-empty dict"),
    (
        "unknown operator",
        lambda s: s.search("alice", "x", where={"a": {"$like": 1}}),
        "unknown filter",
    ),
    (
        "two operators",
        lambda s: s.search("alice", "x", where={"a": {"$eq": 1, "$ne": 2}}),
        "exactly one",
    ),
    ("empty $in", lambda s: s.search("alice", "x", where={"a": {"$in": []}}), "non-empty list"),
    ("memory id not str", lambda s: s.get("alice", 7), "memory_id"),
    ("add_many given one str", lambda s: s.add_many("alice", "text"), "for one text use add"),
    ("add_many bad item", lambda s: s.add_many("alice", ["ok", ""]), "item 1"),
    ("notes wrong type", lambda s: s.ingest_notes("alice", 12), "notes must be"),
    (
        "notes missing path",
        lambda s: s.ingest_notes("alice", Path("/nonexistent/x")),
        "does not exist",
    ),
    (
        "chunk too small",
        lambda s: s.ingest_notes("alice", "x", max_chunk_chars=1),
        "max_chunk_chars",
    ),
    ("transcript wrong type", lambda s: s.ingest_transcript("alice", 5), "transcript must be"),
]


@pytest.mark.parametrize(("name", "call", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_error_naming_the_fix(
    make_local_store: StoreFactory, name: str, call: Call, fix: str
) -> None:
    store = make_local_store(max_text_chars=100)
    with pytest.raises(InvalidInputError, match=fix):
        call(store)
    # Nothing half-written: the store still works and holds nothing for the user.
    assert store.count("alice") == 0


def test_bad_items_in_a_batch_write_nothing(make_local_store: StoreFactory) -> None:
    store = make_local_store()
    with pytest.raises(InvalidInputError):
        store.add_many("alice", ["fine", "also fine", 3])
    assert store.count("alice") == 0


def test_corrupted_key_file(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    store.add("alice", "I keep my spare key under the mat")
    key_file = specsteer_home / "keys" / "users" / "alice.key"
    key_file.write_text("{ this is not json")
    fresh = MemoryStore(embedder=HashEmbedder())
    with pytest.raises(KeyringCorruptedError, match="restore it from a backup") as info:
        fresh.search("alice", "key")
    assert isinstance(info.value, MemoryStoreError)


def test_tampered_row_is_a_corruption_error(specsteer_home: Path) -> None:
    from specsteer.memory import CorruptedMemoryError

    store = MemoryStore(embedder=HashEmbedder())
    m = store.add("alice", "original text")
    col = next(c for c in store._client.list_collections() if c.name.startswith("u-"))
    row = col.get(ids=[m.id], include=["metadatas"])["metadatas"][0]
    sealed = row["_s"]
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    col.update(ids=[m.id], metadatas=[{"_s": flipped}])
    with pytest.raises(CorruptedMemoryError, match="delete it with"):
        store.get("alice", m.id)
    assert store.delete("alice", m.id) is True


def test_configuration_errors(specsteer_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        MemoryStore(tmp_path, url="http://127.0.0.1:1", embedder=HashEmbedder())
    with pytest.raises(ConfigurationError, match="http"):
        MemoryStore(url="ftp://host", embedder=HashEmbedder())
    with pytest.raises(ConfigurationError, match="max_text_chars"):
        MemoryStore(embedder=HashEmbedder(), max_text_chars=0)
    with pytest.raises(ConfigurationError, match="batch_size"):
        InMemoryStore(batch_size=0)
