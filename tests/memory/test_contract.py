"""The memory-store contract: every store behind the seam must pass these tests.

Each test runs against the embedded chromadb store, the same store on a chromadb server, and
the in-memory fake (``make_store`` / ``any_store`` in conftest), or against the embedded store
and the fake (``make_local_store``) where a server adds nothing but time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from specsteer._errors import InvalidInputError
from specsteer.memory import (
    EXPORT_FORMAT,
    BaseMemoryStore,
    Memory,
    MemoryInput,
    MemoryNotFoundError,
    Person,
    Persona,
    UserForgottenError,
    UserNotFoundError,
)

StoreFactory = Callable[..., BaseMemoryStore]


class Clock:
    """A settable clock for TTL tests."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_add_get_search_roundtrip(any_store: BaseMemoryStore) -> None:
    m = any_store.add("alice", "I am allergic to peanuts", {"topic": "health", "level": 3})
    assert len(m.id) == 32
    got = any_store.get("alice", m.id)
    assert got == m
    assert got.metadata == {"topic": "health", "level": 3}
    any_store.add_many("alice", ["My dog is called Rex", "I live in Lisbon"], progress=False)
    hits = any_store.search("alice", "allergic to peanuts", k=2)
    assert hits[0].id == m.id
    assert hits[0].score > hits[1].score
    assert any_store.count("alice") == 3


def test_duplicates_are_stored_once(any_store: BaseMemoryStore) -> None:
    first = any_store.add("alice", "I like green tea")
    again = any_store.add("alice", "  i LIKE   green tea ")
    assert again.id == first.id and again.text == "I like green tea"
    batch = any_store.add_many(
        "alice", ["I like green tea", "New fact", "new   FACT"], progress=False
    )
    assert batch[0].id == first.id
    assert batch[1].id == batch[2].id
    assert any_store.count("alice") == 2
    # Another user storing the same text gets a memory of their own.
    other = any_store.add("bob", "I like green tea")
    assert other.id != first.id


def test_users_are_isolated(any_store: BaseMemoryStore) -> None:
    a = any_store.add("alice", "alice secret: the vault code is 1234")
    any_store.add("bob", "bob likes jazz")
    assert [h.text for h in any_store.search("bob", "vault code", k=5)] == ["bob likes jazz"]
    with pytest.raises(MemoryNotFoundError):
        any_store.get("bob", a.id)
    assert any_store.delete("bob", a.id) is False
    with pytest.raises(MemoryNotFoundError):
        any_store.update("bob", a.id, text="hijacked")
    assert any_store.get("alice", a.id).text == "alice secret: the vault code is 1234"
    assert any_store.all_texts("bob") == ["bob likes jazz"]
    assert any_store.search("carol", "vault") == []
    assert any_store.count("carol") == 0


def test_metadata_filters(any_store: BaseMemoryStore) -> None:
    any_store.add("alice", "peanut allergy", {"topic": "health", "year": 2024})
    any_store.add("alice", "peanut butter recipe", {"topic": "food", "year": 2023})
    any_store.add("alice", "peanut farm visit", {"topic": "travel", "year": 2024, "fav": True})

    def texts(where: dict[str, object]) -> set[str]:
        return {h.text for h in any_store.search("alice", "peanut", k=10, where=where)}

    assert texts({"topic": "food"}) == {"peanut butter recipe"}
    assert texts({"year": 2024}) == {"peanut allergy", "peanut farm visit"}
    assert texts({"year": 2024.0}) == {"peanut allergy", "peanut farm visit"}
    assert texts({"topic": {"$in": ["food", "travel"]}}) == {
        "peanut butter recipe",
        "peanut farm visit",
    }
    assert texts({"topic": {"$ne": "food"}}) == {"peanut allergy", "peanut farm visit"}
    assert texts({"$or": [{"topic": "food"}, {"fav": True}]}) == {
        "peanut butter recipe",
        "peanut farm visit",
    }
    assert texts({"topic": "health", "year": 2023}) == set()
    assert texts({"fav": 1}) == set()  # True and 1 are different values
    assert {m.text for m in any_store.memories("alice", where={"topic": "food"})} == {
        "peanut butter recipe"
    }
    with pytest.raises(InvalidInputError, match="range filter"):
        any_store.search("alice", "peanut", where={"year": {"$gt": 2000}})


def test_min_score_floor(any_store: BaseMemoryStore) -> None:
    any_store.add("alice", "I am allergic to peanuts")
    any_store.add("alice", "quantum chromodynamics lecture notes")
    hits = any_store.search("alice", "allergic to peanuts", k=5, min_score=0.5)
    assert [h.text for h in hits] == ["I am allergic to peanuts"]
    assert all(h.score >= 0.5 for h in hits)
    assert any_store.search("alice", "zzz qqq", k=5, min_score=0.99) == []


def test_update_and_delete(any_store: BaseMemoryStore) -> None:
    m = any_store.add("alice", "I live in Lisbon", {"city": "lisbon", "old": 1})
    u = any_store.update("alice", m.id, text="I live in Porto", metadata={"city": "porto"})
    assert u.id == m.id and u.created_at == m.created_at
    assert any_store.get("alice", m.id).text == "I live in Porto"
    assert any_store.get("alice", m.id).metadata == {"city": "porto"}
    assert any_store.search("alice", "Porto", k=1)[0].id == m.id
    # The old metadata's filter tags are gone with it.
    assert any_store.search("alice", "Porto", where={"old": 1}) == []
    assert any_store.search("alice", "Porto", where={"city": "porto"})[0].id == m.id
    assert "I live in Lisbon" not in any_store.all_texts("alice")
    assert any_store.delete("alice", m.id) is True
    assert any_store.delete("alice", m.id) is False
    with pytest.raises(MemoryNotFoundError):
        any_store.get("alice", m.id)
    assert any_store.count("alice") == 0


def test_ttl_expiry(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    short = store.add("alice", "parking spot B12 today", ttl=60)
    keep = store.add("alice", "parking garage preference: level 2")
    store.add_many("alice", [MemoryInput("parking ticket paid", ttl=30)], progress=False)
    assert store.count("alice") == 3
    clock.now += 61
    assert store.count("alice") == 1
    assert [h.id for h in store.search("alice", "parking spot", k=5)] == [keep.id]
    with pytest.raises(MemoryNotFoundError):
        store.get("alice", short.id)
    # An expired duplicate does not block storing the text again.
    again = store.add("alice", "parking spot B12 today")
    assert again.id != short.id
    # update can set and clear expiry.
    store.update("alice", keep.id, ttl=10)
    clock.now += 11
    assert store.all_texts("alice") == ["parking spot B12 today"]
    store.update("alice", again.id, ttl=None)
    clock.now += 10_000
    assert store.count("alice") == 1


def test_search_skips_expired_rows_and_still_fills_k(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    store.add_many("alice", [f"coffee note {i}" for i in range(10)], ttl=5, progress=False)
    live = store.add_many("alice", [f"coffee order {i}" for i in range(3)], progress=False)
    clock.now += 6
    hits = store.search("alice", "coffee note", k=3)
    assert {h.id for h in hits} == {m.id for m in live}
    assert store.count("alice") == 3


def test_export_import_roundtrip_is_lossless(any_store: BaseMemoryStore, tmp_path: Path) -> None:
    items = [
        MemoryInput('Ünïcode text — with "quotes" and\nnewlines', {"k": "v", "f": 0.1 + 0.2}),
        MemoryInput("numbers", {"i": -(2**40), "b": False, "x": 1e-300}),
        MemoryInput("expiring", ttl=3600),
    ]
    stored = any_store.add_many("alice", items, progress=False)
    path = tmp_path / "alice.jsonl"
    assert any_store.export("alice", path) == 3
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == EXPORT_FORMAT
    assert any_store.import_("dave", path, progress=False) == 3
    assert any_store.memories("dave") == any_store.memories("alice")
    assert sorted(any_store.memories("dave"), key=lambda m: m.id) == sorted(
        stored, key=lambda m: m.id
    )
    # Importing twice replaces by id rather than duplicating.
    any_store.import_("dave", path, progress=False)
    assert any_store.count("dave") == 3
    # A second export is byte-identical.
    path2 = tmp_path / "dave.jsonl"
    any_store.export("dave", path2)
    assert path2.read_bytes() == path.read_bytes()


def test_import_rejects_bad_files(make_local_store: StoreFactory, tmp_path: Path) -> None:
    store = make_local_store()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(InvalidInputError, match="not a specsteer memory export"):
        store.import_("alice", bad)
    bad.write_text(json.dumps(EXPORT_FORMAT) + "\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(InvalidInputError, match="line 2"):
        store.import_("alice", bad)
    assert store.count("alice") == 0


def test_forgetting_an_unknown_user_is_refused_and_changes_nothing(
    any_store: BaseMemoryStore,
) -> None:
    any_store.add("alice", "kept")
    with pytest.raises(UserNotFoundError, match=r"no user 'nobody'.*nothing was forgotten"):
        any_store.forget_user("nobody")
    any_store.add("nobody", "the id was left free")  # no tombstone: no reinstate needed
    assert any_store.all_texts("alice") == ["kept"]
    any_store.forget_user("nobody")
    any_store.forget_user("nobody")  # forgetting a forgotten user again is harmless


def test_a_user_with_only_a_persona_can_be_forgotten(any_store: BaseMemoryStore) -> None:
    any_store.set_persona("alice", Persona(name="Alice"))
    any_store.forget_user("alice")
    assert any_store.persona("alice").empty


def test_drop_person_hides_an_inferred_person_and_refuses_a_stranger(
    any_store: BaseMemoryStore,
) -> None:
    any_store.add("alice", "My sister Lena lives in Lisbon.")
    any_store.set_persona("alice", Persona(people=(Person("Rui", "brother"),)))
    with pytest.raises(InvalidInputError, match=r"nobody called 'Nobody'.*nothing was dropped"):
        any_store.drop_person("alice", "Nobody")
    assert any_store.persona("alice").hidden == ()
    assert any_store.drop_person("alice", "LENA").hidden == ("Lena",)
    any_store.drop_person("alice", "rui")
    view = any_store.persona_view("alice")
    assert view.persona.people == () and view.stored.hidden == ("Lena", "Rui")


def test_forget_user_never_touches_other_users(any_store: BaseMemoryStore) -> None:
    any_store.add_many("alice", ["a1", "a2 shared text"], progress=False)
    any_store.add_many("bob", ["b1", "a2 shared text"], progress=False)
    any_store.forget_user("alice")
    assert any_store.count("alice") == 0
    assert any_store.search("alice", "a2 shared text") == []
    assert any_store.memories("alice") == []
    assert sorted(any_store.all_texts("bob")) == ["a2 shared text", "b1"]
    with pytest.raises(UserForgottenError, match="reinstate_user"):
        any_store.add("alice", "new")
    any_store.reinstate_user("alice")
    any_store.add("alice", "fresh start")
    assert any_store.all_texts("alice") == ["fresh start"]


def test_ingest_notes_and_transcripts(make_local_store: StoreFactory, tmp_path: Path) -> None:
    store = make_local_store()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("First paragraph.\n\nSecond paragraph here.\n")
    (notes / "b.txt").write_text(" ".join([f"Sentence number {i} is here." for i in range(40)]))
    (notes / "skip.bin").write_bytes(b"\x00\x01")
    stored = store.ingest_notes("alice", notes, max_chunk_chars=200, progress=False)
    assert stored[0].text == "First paragraph." and stored[0].metadata["file"] == "a.md"
    assert all(len(m.text) <= 200 for m in stored)
    assert all(m.metadata["source"] == "notes" for m in stored)
    b_text = " ".join(m.text for m in stored if m.metadata["file"] == "b.txt")
    assert b_text == " ".join([f"Sentence number {i} is here." for i in range(40)])
    inline = store.ingest_notes("alice", "A note given as text.", metadata={"tag": "x"})
    assert inline[0].metadata == {"source": "notes", "tag": "x"}

    transcript = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I'm vegetarian and I live in Oslo."},
        {"role": "assistant", "content": "Noted!"},
        {"role": "user", "content": "My sister is called Ingrid."},
    ]
    turns = store.ingest_transcript("bob", transcript, conversation="c1", progress=False)
    assert [m.text for m in turns] == [
        "I'm vegetarian and I live in Oslo.",
        "My sister is called Ingrid.",
    ]
    assert turns[1].metadata == {
        "source": "transcript",
        "role": "user",
        "turn": 3,
        "conversation": "c1",
    }
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in transcript))
    both = store.ingest_transcript("carol", path, roles=("user", "assistant"))
    assert [m.text for m in both] == [transcript[1]["content"], "Noted!", transcript[3]["content"]]
    with pytest.raises(InvalidInputError, match="message 0"):
        store.ingest_transcript("bob", [{"role": "user"}])


def test_threads_share_one_store(make_local_store: StoreFactory) -> None:
    store = make_local_store()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(15):
                store.add(f"user{n % 3}", f"thread {n} fact {i}")
                store.search(f"user{n % 3}", f"fact {i}", k=3)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [store.count(f"user{u}") for u in range(3)] == [30, 30, 30]


def test_on_batch_reports_durable_batches(make_local_store: StoreFactory) -> None:
    store = make_local_store(batch_size=4)
    seen: list[int] = []
    out = store.add_many(
        "alice", [f"item {i}" for i in range(10)], on_batch=lambda b: seen.append(len(b))
    )
    assert seen == [4, 4, 2]
    assert len(out) == 10 and store.count("alice") == 10


def test_progress_bar_on_a_terminal(
    make_local_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    store = make_local_store(batch_size=3)
    out = store.add_many("alice", [f"note {i}" for i in range(10)], progress=True)
    assert len(out) == 10 and store.count("alice") == 10


def test_reinstating_a_live_user_keeps_their_memories(make_local_store: StoreFactory) -> None:
    store = make_local_store()
    store.add("ada", "the spare key is under the blue pot")
    store.reinstate_user("ada")  # never forgotten: nothing to lift
    assert [m.text for m in store.memories("ada")] == ["the spare key is under the blue pot"]
    store.forget_user("ada")
    store.reinstate_user("ada")
    assert store.memories("ada") == []
    store.add("ada", "a fresh start")
    assert [m.text for m in store.memories("ada")] == ["a fresh start"]


def test_memories_are_listed_oldest_first(make_store: StoreFactory) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    texts = ["third", "first", "second"]
    for offset, text in zip([30, 10, 20], texts, strict=True):
        clock.now = 1_700_000_000.0 + offset
        store.add("alice", text)
    assert store.all_texts("alice") == ["first", "second", "third"]


def test_ne_and_nin_also_match_memories_without_the_key(any_store: BaseMemoryStore) -> None:
    any_store.add("alice", "tagged food", {"topic": "food"})
    any_store.add("alice", "tagged travel", {"topic": "travel"})
    any_store.add("alice", "untagged")

    def texts(where: dict[str, object]) -> set[str]:
        return {m.text for m in any_store.memories("alice", where=where)}

    assert texts({"topic": {"$ne": "food"}}) == {"tagged travel", "untagged"}
    assert texts({"topic": {"$nin": ["food", "travel"]}}) == {"untagged"}
    assert texts({"topic": {"$in": ["food", "travel"]}}) == {"tagged food", "tagged travel"}
    assert texts({"$and": [{"topic": {"$ne": "food"}}, {"topic": {"$ne": "travel"}}]}) == {
        "untagged"
    }


def test_put_many_keeps_ids_and_replaces_by_id(any_store: BaseMemoryStore) -> None:
    old = Memory("a" * 32, "I live in Lisbon", {"city": "lisbon"}, 100.0, 100.0, None)
    any_store.put_many("alice", [old])
    assert any_store.get("alice", old.id) == old
    new = Memory(old.id, "I live in Porto", {"region": "north"}, 100.0, 200.0, None)
    any_store.put_many("alice", [new])
    assert any_store.memories("alice") == [new]
    # The replaced metadata matches no filter any more; the new one does.
    assert any_store.search("alice", "Lisbon", where={"city": "lisbon"}) == []
    assert [h.id for h in any_store.search("alice", "Porto", where={"region": "north"})] == [old.id]
    any_store.forget_user("alice", purge_vectors=False)
    with pytest.raises(UserForgottenError):
        any_store.put_many("alice", [old])


def test_returned_memories_cannot_change_the_store(any_store: BaseMemoryStore) -> None:
    m = any_store.add("alice", "likes jazz", {"genre": "jazz"})
    m.metadata["genre"] = "pop"  # type: ignore[index]
    any_store.memories("alice")[0].metadata["genre"] = "pop"  # type: ignore[index]
    assert any_store.get("alice", m.id).metadata == {"genre": "jazz"}
    assert any_store.search("alice", "jazz", where={"genre": "pop"}) == []


def test_persona_is_kept_per_user_apart_from_memories(any_store: BaseMemoryStore) -> None:
    assert any_store.persona("alice") == Persona()
    persona = Persona("Maya Okafor", "Love, Maya", (Person("Lena", "Sister"),))
    assert any_store.set_persona("alice", persona) == persona
    assert any_store.persona("alice") == persona
    assert any_store.persona("alice").people[0].relation == "sister"
    assert any_store.persona("bob") == Persona()
    # The persona is not a memory: it is never listed, counted or searched.
    assert any_store.count("alice") == 0 and any_store.memories("alice") == []
    assert any_store.search("alice", "Maya Okafor") == []
    any_store.add("alice", "I am vegetarian.")
    assert any_store.persona("alice") == persona
    assert any_store.set_persona("alice", Persona(name="Maya")).name == "Maya"
    assert any_store.persona("alice") == Persona(name="Maya")
    any_store.set_persona("alice", Persona())
    assert any_store.persona("alice").empty
    with pytest.raises(InvalidInputError, match="takes a Persona"):
        any_store.set_persona("alice", {"name": "Maya"})  # type: ignore[arg-type]


def test_persona_is_forgotten_with_the_user(any_store: BaseMemoryStore) -> None:
    any_store.set_persona("alice", Persona(name="Alice"))
    any_store.set_persona("bob", Persona(name="Bob"))
    any_store.forget_user("alice")
    assert any_store.persona("alice").empty
    assert any_store.persona("bob").name == "Bob"
    with pytest.raises(UserForgottenError):
        any_store.set_persona("alice", Persona(name="Alice"))
    any_store.reinstate_user("alice")
    assert any_store.persona("alice").empty
    any_store.set_persona("alice", Persona(name="Alice again"))
    assert any_store.persona("alice").name == "Alice again"


def test_persona_view_fills_gaps_from_memories(any_store: BaseMemoryStore) -> None:
    any_store.add_many(
        "alice",
        ["My sister Lena lives in Lisbon.", "Thanks for the lift!\nCheers,\nInes"],
        progress=False,
    )
    view = any_store.persona_view("alice")
    assert view.persona.name == "Ines" and view.source("name") == "inferred"
    assert view.persona.sign_off == "Cheers, Ines"
    assert view.persona.people == (Person("Lena", "sister"),)
    any_store.set_persona("alice", Persona(name="Inês Duarte").without_person("Lena"))
    view = any_store.persona_view("alice")
    assert view.persona.name == "Inês Duarte" and view.source("name") == "set"
    assert view.persona.people == () and view.source("Lena") is None
    assert view.source("sign_off") == "inferred"


def test_export_import_carries_the_persona(any_store: BaseMemoryStore, tmp_path: Path) -> None:
    any_store.add("alice", "I am vegetarian.")
    persona = Persona("Alice", "Best, Alice", (Person("Bob", "brother"),), hidden=("Eve",))
    any_store.set_persona("alice", persona)
    path = tmp_path / "alice.jsonl"
    assert any_store.export("alice", path) == 1
    assert any_store.import_("carol", path, progress=False) == 1
    assert any_store.persona("carol") == persona
    assert any_store.all_texts("carol") == ["I am vegetarian."]
    # A version-1 file (memories only) still imports.
    lines = path.read_text(encoding="utf-8").splitlines()
    old = [json.dumps({**EXPORT_FORMAT, "version": 1}), lines[2]]
    path.write_text("\n".join(old) + "\n", encoding="utf-8")
    assert any_store.import_("dave", path, progress=False) == 1
    assert any_store.persona("dave").empty
