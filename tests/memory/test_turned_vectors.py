"""Stored embedding vectors are turned by the user's key: search is unchanged, a guess fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specsteer.memory import HashEmbedder, MemoryStore, Persona
from specsteer.memory._crypto import TURNED_ROW
from specsteer.memory._rotation import rotation

TEXTS = [
    "My sister Lena lives in Lisbon; her birthday is on March 14th.",
    "I am vegetarian and allergic to peanuts.",
    "Long runs are on Saturday mornings.",
    "I have a dentist appointment on Tuesday.",
    "My partner Gabriela and I celebrate at Ramen Tetsu.",
]


def _collection(store: MemoryStore, user: str) -> Any:
    return store._client.get_collection(store._users.name_for(user), embedding_function=None)


def _stored(store: MemoryStore, user: str) -> dict[str, np.ndarray]:
    found = _collection(store, user).get(include=["embeddings"])
    return dict(zip(found["ids"], np.asarray(found["embeddings"], dtype=np.float32), strict=True))


def _raw(texts: list[str]) -> np.ndarray:
    return HashEmbedder().embed(texts).astype(np.float32)


def test_the_rotation_is_orthogonal_and_fixed_by_the_key() -> None:
    q = rotation(b"\x01" * 32, 48)
    assert np.allclose(q @ q.T, np.eye(48), atol=1e-12)
    assert np.array_equal(q, rotation(b"\x01" * 32, 48))
    assert not np.allclose(q, rotation(b"\x02" * 32, 48))
    # Stores written today must open with tomorrow's code: the derivation is pinned.
    pinned = rotation(b"\x00" * 32, 6)
    assert pinned[0, :3].tolist() == pytest.approx([-0.749018488, 0.295483527, -0.492876696])
    assert float(pinned[5, 5]) == pytest.approx(0.731459900)


def test_search_finds_what_the_embedders_own_vectors_would(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    stored = {m.text: m for m in (store.add("maya", t) for t in TEXTS)}
    raw = _raw(TEXTS)
    for query in ["What should I cook for dinner?", "my sister's birthday", "Saturday plans"]:
        q = _raw([query])[0]
        expected = sorted(zip(raw @ q, TEXTS, strict=True), reverse=True)[:3]
        hits = store.search("maya", query, k=3)
        assert [h.memory.text for h in hits] == [t for _, t in expected]
        assert [h.score for h in hits] == pytest.approx([float(s) for s, _ in expected], abs=1e-5)
        assert all(h.memory.id == stored[h.memory.text].id for h in hits)


def test_a_guessed_memory_does_not_find_its_vector_without_the_key(
    specsteer_home: Path,
) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    ids = {store.add("maya", t).id: t for t in TEXTS}
    stored = _stored(store, "maya")
    keys = store._users.open("maya")
    assert keys is not None
    for mid, vector in stored.items():
        guess = _raw([ids[mid]])[0]
        assert abs(float(vector @ guess)) < 0.5  # the guess is no closer than a stranger
        assert float(vector @ keys[0].turn(guess[None])[0]) == pytest.approx(1.0, abs=1e-5)


def _make_old(store: MemoryStore, user: str, turned_too: int = 0) -> None:
    """Put the store back as it was before vectors were turned: raw vectors, no row marked; the
    first ``turned_too`` rows as a turning cut short left them (turned and marked)."""
    col = _collection(store, user)
    memories = {m.id: m.text for m in store.memories(user)}
    ids = list(col.get(include=[])["ids"])
    col.update(
        ids=ids,
        embeddings=_raw([memories[i] for i in ids]),
        metadatas=[{TURNED_ROW: None} for _ in ids],  # None removes the field
    )
    keys = store._users.open(user)
    assert keys is not None
    done = ids[:turned_too]
    if done:
        col.update(
            ids=done,
            embeddings=keys[0].turn(_raw([memories[i] for i in done])),
            metadatas=[{TURNED_ROW: True} for _ in done],
        )
    marked = [row.get(TURNED_ROW) for row in col.get(include=["metadatas"])["metadatas"]]
    assert marked.count(True) == turned_too and len(marked) == len(ids)


@pytest.mark.parametrize("turned_too", [0, 2])
def test_a_store_from_before_is_turned_once_when_opened(
    specsteer_home: Path, turned_too: int
) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    texts = {store.add("maya", t).id: t for t in TEXTS}
    store.set_persona("maya", Persona("Maya Okafor", "Love, Maya"))
    _make_old(store, "maya", turned_too)
    del store

    fresh = MemoryStore(embedder=HashEmbedder())
    hits = fresh.search("maya", "vegetarian peanuts", k=1)
    assert [h.memory.text for h in hits] == [TEXTS[1]]
    rows = _collection(fresh, "maya").get(include=["metadatas"])["metadatas"]
    assert all(row[TURNED_ROW] is True for row in rows)
    assert fresh.persona("maya").sign_off == "Love, Maya"  # sealed in the same metadata
    keys = fresh._users.open("maya")
    assert keys is not None
    for mid, vector in _stored(fresh, "maya").items():
        expected = keys[0].turn(_raw([texts[mid]]))[0]
        assert np.allclose(vector, expected, atol=1e-5), "each row turned exactly once"
