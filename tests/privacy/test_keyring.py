"""Keyring: file modes, per-user keys, rotation, crypto-shredding, passphrase, corruption."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from specsteer import InvalidInputError, MemoryStoreError
from specsteer.privacy import (
    DecryptionError,
    KeyDestroyedError,
    KeyNotFoundError,
    Keyring,
    KeyringCorruptedError,
    WrongPassphraseError,
    open_sealed,
    open_sealed_any,
    seal,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_root_is_under_specsteer_home(specsteer_home: Path) -> None:
    ring = Keyring()
    assert ring.root == specsteer_home / "keys"


def test_files_are_0600_and_dirs_0700(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    ring.data_key("alice")
    ring.audit_key()
    ring.signing_key()
    ring.destroy("bob")
    files = [p for p in (tmp_path / "keys").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "keyring.json",
        "alice.key",
        "audit.key",
        "signing.key",
        "bob.forgotten",
    }
    for p in files:
        assert _mode(p) == 0o600, p
    for d in [tmp_path / "keys", tmp_path / "keys" / "users"]:
        assert _mode(d) == 0o700, d


def test_data_key_is_stable_per_user_and_distinct_between_users() -> None:
    ring = Keyring()
    a = ring.data_key("alice")
    assert len(a) == 32
    assert ring.data_key("alice") == a
    assert Keyring().data_key("alice") == a  # reopened from disk
    assert ring.data_key("bob") != a
    assert ring.has_key("alice") and not ring.has_key("carol")


def test_missing_key_without_create_raises_typed_error() -> None:
    ring = Keyring()
    with pytest.raises(KeyNotFoundError, match="create=True"):
        ring.data_key("carol", create=False)
    assert not ring.has_key("carol")


def test_destroy_is_permanent_and_not_silently_recreated(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    key = ring.data_key("alice")
    blob = seal(key, b"my diary", b"alice")
    ring.destroy("alice")
    assert not (tmp_path / "users" / "alice.key").exists()
    assert not ring.has_key("alice")
    assert ring.is_forgotten("alice")
    for call in (lambda: ring.data_key("alice"), lambda: Keyring(tmp_path).data_key("alice")):
        with pytest.raises(KeyDestroyedError, match="forgotten"):
            call()
    with pytest.raises(KeyDestroyedError):
        ring.rotate("alice")
    # No file in the keyring holds the old key any more.
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert key not in p.read_bytes()
    # A fresh start is explicit, and the old data stays unreadable.
    fresh = ring.data_key("alice", recreate=True)
    assert fresh != key
    with pytest.raises(DecryptionError):
        open_sealed(fresh, blob, b"alice")
    ring.destroy("alice")
    ring.forget_tombstone("alice")
    assert ring.data_key("alice") not in (key, fresh)


def test_destroy_is_a_memory_store_error_branch() -> None:
    ring = Keyring()
    ring.destroy("alice")
    with pytest.raises(MemoryStoreError):
        ring.data_key("alice")


def test_rotate_keeps_old_versions_until_retired() -> None:
    ring = Keyring()
    old = ring.data_key("alice")
    old_blob = seal(old, b"before", b"")
    new = ring.rotate("alice")
    assert new != old
    assert ring.data_key("alice") == new
    assert ring.data_keys("alice") == [new, old]
    assert open_sealed_any(ring.data_keys("alice"), old_blob) == b"before"
    assert ring.retire_old_keys("alice") == 1
    assert ring.data_keys("alice") == [new]
    with pytest.raises(DecryptionError):
        open_sealed_any(ring.data_keys("alice"), old_blob)


def test_passphrase_protects_keys_and_wrong_one_is_typed(tmp_path: Path) -> None:
    ring = Keyring(tmp_path, passphrase="correct horse")
    assert ring.protected
    key = ring.data_key("alice")
    audit = ring.audit_key()
    raw = (tmp_path / "users" / "alice.key").read_bytes()
    assert key not in raw
    reopened = Keyring(tmp_path, passphrase="correct horse")
    assert reopened.data_key("alice") == key
    assert reopened.audit_key() == audit
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        Keyring(tmp_path, passphrase="battery staple")
    with pytest.raises(WrongPassphraseError, match="protected by a passphrase"):
        Keyring(tmp_path)


def test_a_protected_keyring_opens_with_the_passphrase_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Keyring(tmp_path / "a", passphrase="correct horse").data_key("alice")
    monkeypatch.setenv("SPECSTEER_KEYRING_PASSPHRASE", "correct horse")
    assert Keyring(tmp_path / "a").data_key("alice") == key
    assert not Keyring(tmp_path / "b").protected  # a new keyring is made as asked, not by it
    monkeypatch.setenv("SPECSTEER_KEYRING_PASSPHRASE", "battery staple")
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        Keyring(tmp_path / "a")
    monkeypatch.delenv("SPECSTEER_KEYRING_PASSPHRASE")
    with pytest.raises(WrongPassphraseError, match="SPECSTEER_KEYRING_PASSPHRASE"):
        Keyring(tmp_path / "a")


def test_passphrase_on_unprotected_keyring_is_refused(tmp_path: Path) -> None:
    Keyring(tmp_path).data_key("alice")
    with pytest.raises(WrongPassphraseError, match="without a passphrase"):
        Keyring(tmp_path, passphrase="x")


@pytest.mark.parametrize(
    "garble",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b"\xff\xfe not json",
        lambda b: b"[]",
        lambda b: json.dumps(
            {"format": 1, "user_id": "alice", "current": 1, "versions": {"1": "AAAA"}}
        ).encode(),
        lambda b: json.dumps(
            {"format": 1, "user_id": "mallory", "current": 1, "versions": {}}
        ).encode(),
    ],
    ids=["truncated", "binary", "not-object", "short-key", "wrong-user"],
)
def test_corrupted_user_key_file_is_typed_and_names_the_fix(tmp_path: Path, garble) -> None:  # type: ignore[no-untyped-def]
    Keyring(tmp_path).data_key("alice")
    path = tmp_path / "users" / "alice.key"
    path.write_bytes(garble(path.read_bytes()))
    with pytest.raises(KeyringCorruptedError, match="backup") as info:
        Keyring(tmp_path).data_key("alice")
    assert "alice.key" in str(info.value)


def test_corrupted_wrapped_key_is_typed(tmp_path: Path) -> None:
    Keyring(tmp_path, passphrase="pw").data_key("alice")
    path = tmp_path / "users" / "alice.key"
    doc = json.loads(path.read_text())
    blob = bytearray(__import__("base64").b64decode(doc["versions"]["1"]))
    blob[-1] ^= 1
    doc["versions"]["1"] = __import__("base64").b64encode(bytes(blob)).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyringCorruptedError):
        Keyring(tmp_path, passphrase="pw").data_key("alice")


def test_corrupted_meta_file_is_typed(tmp_path: Path) -> None:
    Keyring(tmp_path, passphrase="pw")
    (tmp_path / "keyring.json").write_text('{"format": 1, "protection": "scrypt"}')
    with pytest.raises(KeyringCorruptedError):
        Keyring(tmp_path, passphrase="pw")


@pytest.mark.parametrize(
    ("user_id", "rule"),
    [
        ("", "non-empty"),
        ("x" * 129, "at most 128"),
        ("../etc", "letters, digits"),
        ("a/b", "letters, digits"),
        (".hidden", "letters, digits"),
        ("al ice", "letters, digits"),
    ],
)
def test_user_id_rules(user_id: str, rule: str) -> None:
    with pytest.raises(InvalidInputError, match=rule):
        Keyring().data_key(user_id)


def test_good_user_ids_pass() -> None:
    ring = Keyring()
    for uid in ("alice", "u-1", "a.b_c", "bob@example.com", "x" * 128):
        assert len(ring.data_key(uid)) == 32


def test_signing_key_is_stable_and_public_key_exportable(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    sig = ring.signing_key().sign(b"head")
    again = Keyring(tmp_path)
    again.signing_key().public_key().verify(sig, b"head")
    assert again.export_public_key().startswith("-----BEGIN PUBLIC KEY-----")


def test_concurrent_first_use_yields_one_key() -> None:
    ring = Keyring()
    got: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        k = ring.data_key("alice")
        with lock:
            got.append(k)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    assert Keyring().data_key("alice") == got[0]


def test_seal_round_trip_and_tamper_detection() -> None:
    key = Keyring().data_key("alice")
    blob = seal(key, b"secret", b"aad-1")
    assert b"secret" not in blob
    assert seal(key, b"secret", b"aad-1") != blob  # random nonce
    assert open_sealed(key, blob, b"aad-1") == b"secret"
    with pytest.raises(DecryptionError):
        open_sealed(key, blob, b"aad-2")
    tampered = bytearray(blob)
    tampered[14] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(key, bytes(tampered), b"aad-1")
    with pytest.raises(DecryptionError, match="too short"):
        open_sealed(key, b"abc", b"aad-1")
    with pytest.raises(InvalidInputError, match="32 bytes"):
        seal(b"short", b"x", b"")


def _read_only_chmod(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every chmod fail as on a file system mounted read-only; returns the paths tried."""
    tried: list[str] = []

    def refuse(path: object, mode: int, **_: object) -> None:
        tried.append(str(path))
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "chmod", refuse)
    return tried


def test_opening_a_private_keyring_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Keyring(tmp_path / "keys").data_key("alice")
    tried = _read_only_chmod(monkeypatch)
    assert Keyring(tmp_path / "keys").data_key("alice", create=False) == key
    assert tried == []


def test_a_loose_keyring_on_a_read_only_file_system_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = Keyring(tmp_path / "keys").data_key("alice")
    (tmp_path / "keys").chmod(0o755)
    caplog.set_level(logging.DEBUG, logger="specsteer._home")  # said once per process
    tried = _read_only_chmod(monkeypatch)
    assert Keyring(tmp_path / "keys").data_key("alice", create=False) == key
    assert tried == [str(tmp_path / "keys")]
    assert "read-only" in caplog.text
