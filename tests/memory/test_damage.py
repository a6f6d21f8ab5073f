"""Damage on disk is reported, never papered over: a lost user key, an empty or corrupt store
file, an export that cannot be written (no plaintext temp file left behind)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from specsteer._errors import InvalidInputError, MemoryStoreError
from specsteer.memory import (
    EXPORT_FORMAT,
    HashEmbedder,
    MemoryStore,
    Persona,
    UserKeyMissingError,
)
from specsteer.memory._chroma_client import _open_hint


def _store() -> MemoryStore:
    return MemoryStore(embedder=HashEmbedder())


@pytest.fixture
def lost_key(specsteer_home: Path) -> Path:
    """Maya stored a memory and a persona, then her key file was deleted; returns a copy."""
    store = _store()
    store.add("maya", "I am vegetarian.")
    store.set_persona("maya", Persona(name="Maya"))
    store.close()
    key = specsteer_home / "keys" / "users" / "maya.key"
    backup = specsteer_home.parent / "maya.key.backup"
    shutil.copy(key, backup)
    key.unlink()
    return backup


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.memories("maya"),
        lambda s: s.search("maya", "food"),
        lambda s: s.count("maya"),
        lambda s: s.persona("maya"),
        lambda s: s.add("maya", "new"),
        lambda s: s.set_persona("maya", Persona(name="M")),
    ],
    ids=["list", "search", "count", "persona", "add", "set_persona"],
)
def test_a_lost_key_is_reported_and_never_replaced(
    lost_key: Path, specsteer_home: Path, call
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserKeyMissingError, match=r"1 memory .*restore that key file") as info:
        call(_store())
    assert "forget_user('maya')" in str(info.value)
    assert isinstance(info.value, MemoryStoreError)
    assert not (specsteer_home / "keys" / "users" / "maya.key").exists(), "a new key was made"


def test_a_restored_key_reads_everything_again(lost_key: Path, specsteer_home: Path) -> None:
    with pytest.raises(UserKeyMissingError):
        _store().add("maya", "written while the key was missing")
    shutil.copy(lost_key, specsteer_home / "keys" / "users" / "maya.key")
    store = _store()
    assert [m.text for m in store.memories("maya")] == ["I am vegetarian."]
    assert store.persona("maya").name == "Maya"


def test_forgetting_a_user_whose_key_is_lost_lets_them_start_again(lost_key: Path) -> None:
    store = _store()
    store.forget_user("maya")
    store.reinstate_user("maya")
    store.add("maya", "new")
    assert [m.text for m in store.memories("maya")] == ["new"]
    assert store.persona("maya").empty


def test_reinstate_finishes_a_forget_cut_short(specsteer_home: Path) -> None:
    store = _store()
    store.add("maya", "old")
    store.keyring.destroy("maya")  # a forget that stopped before deleting the collection
    store.close()
    store = _store()
    store.reinstate_user("maya")
    store.add("maya", "new")
    assert [m.text for m in store.memories("maya")] == ["new"]


def test_an_empty_store_file_is_damage_not_a_new_store(specsteer_home: Path) -> None:
    _store().add("maya", "I am vegetarian.")
    db = specsteer_home / "memory" / "chroma.sqlite3"
    other = specsteer_home.parent / "empty-store"
    other.mkdir()
    (other / "chroma.sqlite3").write_bytes(b"")
    with pytest.raises(MemoryStoreError, match=r"is empty \(0 bytes\).*restore the folder"):
        MemoryStore(other, embedder=HashEmbedder())
    assert (other / "chroma.sqlite3").stat().st_size == 0
    assert db.stat().st_size > 0


def test_a_corrupt_store_file_is_named_as_damaged(tmp_path: Path, specsteer_home: Path) -> None:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "chroma.sqlite3").write_bytes(b"not a database " * 500)
    with pytest.raises(MemoryStoreError, match="is damaged or is not a chromadb database"):
        MemoryStore(folder, embedder=HashEmbedder())


def test_a_new_store_still_opens(tmp_path: Path, specsteer_home: Path) -> None:
    store = MemoryStore(tmp_path / "new", embedder=HashEmbedder())
    store.add("maya", "first")
    assert store.count("maya") == 1


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    ("target", "fix"),
    [
        (lambda d: d / "missing" / "maya.jsonl", "does not exist; create it first"),
        (lambda d: d / "folder", "is a folder; name the file to write"),
    ],
    ids=["missing folder", "onto a folder"],
)
def test_export_to_a_bad_path_is_typed_and_leaves_nothing(
    embedded_store: MemoryStore, tmp_path: Path, target, fix: str
) -> None:  # type: ignore[no-untyped-def]
    embedded_store.add("maya", "a private note")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidInputError, match=fix):
        embedded_store.export("maya", target(tmp_path))
    assert _temp_files(tmp_path) == []


def test_a_failed_export_write_removes_its_plaintext_temp_file(
    embedded_store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded_store.add("maya", "a private note")

    def refuse(src: object, dst: object) -> None:
        raise IsADirectoryError(21, "Is a directory", str(dst))

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InvalidInputError, match="cannot write export file"):
        embedded_store.export("maya", out / "maya.jsonl")
    assert list(out.iterdir()) == []


def test_import_of_an_unknown_version_names_the_versions_read(
    embedded_store: MemoryStore, tmp_path: Path
) -> None:
    path = tmp_path / "future.jsonl"
    path.write_text(json.dumps({**EXPORT_FORMAT, "version": 99}) + "\n")
    with pytest.raises(InvalidInputError, match=r"version 99, which .* reads versions 1 and 2"):
        embedded_store.import_("maya", path)


def test_a_read_only_store_folder_is_named_as_such(tmp_path: Path) -> None:
    said = "error returned from database: (code: 8) attempt to write a readonly database"
    hint = _open_hint(tmp_path, RuntimeError(said))
    assert f"the folder {tmp_path} is read-only" in hint and "make it writable" in hint
