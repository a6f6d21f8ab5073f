"""A Hypothesis state machine against every store: embedded, a chromadb server, and the fake.

Invariants after every step: each user's count, export and persona match a plain-dict model; no
search, get or export ever shows another user's memory, a deleted memory, a forgotten user's
memory, or a forgotten user's persona.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from specsteer.memory import (
    BaseMemoryStore,
    HashEmbedder,
    MemoryNotFoundError,
    MemoryStore,
    Person,
    Persona,
    UserForgottenError,
    UserNotFoundError,
)
from specsteer.memory._crypto import normalize_text
from specsteer.memory.testing import InMemoryStore
from specsteer.privacy import Keyring

USERS = ("alice", "bob", "carol")
WORDS = ("tea", "coffee", "Lisbon", "dog", "Rex", "peanuts", "allergy", "jazz", "hiking", "sister")
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join) | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda t: t.strip() != "")
users = st.sampled_from(USERS)
topics = st.sampled_from(("a", "b"))

StoreFactory = Callable[[Path], BaseMemoryStore]
_counter = itertools.count()


def make_machine(factory: StoreFactory, root: Path) -> type[RuleBasedStateMachine]:
    class MemoryMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.dir = root / f"example-{next(_counter)}"
            self.dir.mkdir(parents=True)
            self.store = factory(self.dir)
            self.model: dict[str, dict[str, str]] = {u: {} for u in USERS}
            self.topic: dict[str, dict[str, str]] = {u: {} for u in USERS}
            self.forgotten: set[str] = set()
            self.known: set[str] = set()  # users the store holds anything of
            self.gone_ids: set[str] = set()
            self.personas: dict[str, Persona] = {u: Persona() for u in USERS}

        def _ids_with_text(self, user: str, text: str) -> set[str]:
            norm = normalize_text(text)
            return {i for i, t in self.model[user].items() if normalize_text(t) == norm}

        @rule(user=users, text=texts, topic=topics)
        def add(self, user: str, text: str, topic: str) -> None:
            if user in self.forgotten:
                with pytest.raises(UserForgottenError):
                    self.store.add(user, text, {"topic": topic})
                return
            existing = self._ids_with_text(user, text)
            m = self.store.add(user, text, {"topic": topic})
            self.known.add(user)
            if existing:
                assert m.id in existing
            else:
                assert m.id not in self.gone_ids
                self.model[user][m.id] = text
                self.topic[user][m.id] = topic

        @rule(data=st.data(), user=users)
        def add_again(self, data: st.DataObject, user: str) -> None:
            """Re-adding a stored text (in another case or spacing) returns the stored memory."""
            if user in self.forgotten or not self.model[user]:
                return
            text = data.draw(st.sampled_from(sorted(self.model[user].values())))
            variants = [
                v
                for v in (text, text.upper(), f"  {text}  ")
                if normalize_text(v) == normalize_text(text)
            ]
            variant = data.draw(st.sampled_from(variants))
            m = self.store.add(user, variant)
            assert m.id in self._ids_with_text(user, text)
            assert m.text == self.model[user][m.id]

        @rule(user=users, batch=st.lists(texts, min_size=1, max_size=5))
        def add_many(self, user: str, batch: list[str]) -> None:
            if user in self.forgotten:
                with pytest.raises(UserForgottenError):
                    self.store.add_many(user, batch, progress=False)
                return
            out = self.store.add_many(user, batch, metadata={"topic": "a"}, progress=False)
            self.known.add(user)
            assert len(out) == len(batch)
            for m, text in zip(out, batch, strict=True):
                assert normalize_text(m.text) == normalize_text(text)
                if m.id not in self.model[user]:
                    self.model[user][m.id] = text
                    self.topic[user][m.id] = "a"

        @rule(data=st.data(), user=users, text=texts)
        def update(self, data: st.DataObject, user: str, text: str) -> None:
            if not self.model[user]:
                return
            mid = data.draw(st.sampled_from(list(self.model[user])))
            self.store.update(user, mid, text=text)
            self.model[user][mid] = text

        @rule(data=st.data(), user=users)
        def delete(self, data: st.DataObject, user: str) -> None:
            if not self.model[user]:
                return
            mid = data.draw(st.sampled_from(list(self.model[user])))
            assert self.store.delete(user, mid) is True
            del self.model[user][mid]
            self.gone_ids.add(mid)
            assert self.store.delete(user, mid) is False

        @rule(user=users, name=st.sampled_from(WORDS), friend=st.none() | st.sampled_from(WORDS))
        def set_persona(self, user: str, name: str, friend: str | None) -> None:
            people = (Person(friend, "friend"),) if friend is not None else ()
            persona = Persona(name=name.title(), people=people)
            if user in self.forgotten:
                with pytest.raises(UserForgottenError):
                    self.store.set_persona(user, persona)
                return
            self.store.set_persona(user, persona)
            self.personas[user] = persona
            self.known.add(user)

        @rule(user=users)
        def forget(self, user: str) -> None:
            if user not in self.known:
                with pytest.raises(UserNotFoundError):
                    self.store.forget_user(user, purge_vectors=False)
                return
            self.store.forget_user(user, purge_vectors=False)
            self.gone_ids.update(self.model[user])
            self.model[user].clear()
            self.personas[user] = Persona()
            self.forgotten.add(user)

        @rule(user=users)
        def reinstate(self, user: str) -> None:
            if user in self.forgotten:
                self.store.reinstate_user(user)
                self.forgotten.discard(user)
                self.known.discard(user)

        @rule(data=st.data(), user=users, other=users)
        def cross_user_get(self, data: st.DataObject, user: str, other: str) -> None:
            if user == other or not self.model[other]:
                return
            mid = data.draw(st.sampled_from(list(self.model[other])))
            with pytest.raises(MemoryNotFoundError):
                self.store.get(user, mid)

        @rule(data=st.data(), user=users, k=st.integers(1, 6), topic=st.none() | topics)
        def search(self, data: st.DataObject, user: str, k: int, topic: str | None) -> None:
            pool = sorted({t for u in USERS for t in self.model[u].values()}) or ["tea"]
            query = data.draw(st.sampled_from(pool))
            where = {"topic": topic} if topic is not None else None
            hits = self.store.search(user, query, k=k, where=where)
            mine = self.model[user]
            assert len(hits) <= k
            for hit in hits:
                assert hit.id in mine, "a hit that is not this user's live memory"
                assert hit.text == mine[hit.id]
                if topic is not None:
                    assert self.topic[user][hit.id] == topic
            expected = len([i for i in mine if topic is None or self.topic[user][i] == topic])
            assert len(hits) == min(k, expected)
            same = self._ids_with_text(user, query)
            if where is None and same:
                # The exact text scores 1; texts that embed identically may tie with it.
                assert hits[0].score > 0.999
                top = {h.id for h in hits if h.score > 0.999}
                assert same & top or len(top) == len(hits)

        @invariant()
        def counts_and_exports_match_model(self) -> None:
            for user in USERS:
                assert self.store.count(user) == len(self.model[user])
                path = self.dir / f"{user}.jsonl"
                self.store.export(user, path)
                lines = path.read_text(encoding="utf-8").splitlines()[1:]
                docs = [json.loads(line) for line in lines]
                exported = {d["id"]: d["text"] for d in docs if "persona" not in d}
                assert exported == self.model[user]
                assert not (set(exported) & self.gone_ids)
                assert sorted(self.store.all_texts(user)) == sorted(self.model[user].values())
                assert self.store.persona(user) == self.personas[user]

        def teardown(self) -> None:
            for user in self.known:
                self.store.forget_user(user, purge_vectors=False)
            self.store.close()

    return MemoryMachine


SETTINGS = settings(
    max_examples=int(os.environ.get("SPECSTEER_SM_EXAMPLES", "25")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_state_machine_embedded(specsteer_home: Path) -> None:
    def factory(d: Path) -> MemoryStore:
        return MemoryStore(d / "memory", embedder=HashEmbedder(dim=64), keyring=Keyring(d / "keys"))

    run_state_machine_as_test(make_machine(factory, specsteer_home / "sm"), settings=SETTINGS)


def test_state_machine_server(specsteer_home: Path, chroma_server: str) -> None:
    def factory(d: Path) -> MemoryStore:
        return MemoryStore(
            url=chroma_server, embedder=HashEmbedder(dim=64), keyring=Keyring(d / "keys")
        )

    run_state_machine_as_test(make_machine(factory, specsteer_home / "sm"), settings=SETTINGS)


def test_state_machine_fake(specsteer_home: Path) -> None:
    def factory(d: Path) -> InMemoryStore:
        return InMemoryStore(embedder=HashEmbedder(dim=64))

    run_state_machine_as_test(make_machine(factory, specsteer_home / "sm"), settings=SETTINGS)
