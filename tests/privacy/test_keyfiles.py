"""Key files: never through a symbolic link, made once across processes, bounded scrypt cost,
and a signing key sealed under a passphrase of its own."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from specsteer.privacy import (
    AuditLog,
    Keyring,
    KeyringCorruptedError,
    WrongPassphraseError,
    verify_log,
)


def test_a_link_in_place_of_a_key_file_is_refused_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "chosen-by-someone-else"
    Keyring(elsewhere).audit_key()
    keys = tmp_path / "keys"
    Keyring(keys)
    (keys / "audit.key").symlink_to(elsewhere / "audit.key")
    with pytest.raises(KeyringCorruptedError, match="symbolic link"):
        Keyring(keys).audit_key()


def test_destroy_removes_a_link_but_never_overwrites_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("not a key")
    ring = Keyring(tmp_path / "keys")
    (ring.root / "users" / "alice.key").symlink_to(victim)
    ring.destroy("alice")
    assert victim.read_text() == "not a key"
    assert not (ring.root / "users" / "alice.key").is_symlink()


def test_a_link_planted_at_the_temporary_name_gets_no_key(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    stolen = tmp_path / "stolen"
    # The temporary names a predictable writer would use, for this process and thread.
    for name in ("audit.key", "keyring.json"):
        tmp = ring.root / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.symlink_to(stolen)
    ring.audit_key()
    assert not stolen.exists()
    assert (ring.root / "audit.key").is_file() and not (ring.root / "audit.key").is_symlink()


def _make_key(root: str, start: Any, out: Any) -> None:
    start.wait()
    ring = Keyring(root)
    out.put((ring.audit_key().hex(), ring.data_key("alice").hex()))


def test_processes_creating_keys_at_once_share_one(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 6
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_make_key, args=(str(tmp_path / "keys"), start, out)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(got)) == 1, "two processes made different keys"
    ring = Keyring(tmp_path / "keys")
    assert (ring.audit_key().hex(), ring.data_key("alice").hex()) == got[0]


def _meta(root: Path, **params: int) -> None:
    path = root / "keyring.json"
    meta = json.loads(path.read_text())
    meta.update(params)
    path.write_text(json.dumps(meta))


@pytest.fixture
def no_big_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly, instead of allocating, if anything asks scrypt for more than 1 GiB."""

    def bounded(*, salt: bytes, length: int, n: int, r: int, p: int) -> Scrypt:
        assert 128 * n * r * p <= 1 << 30, f"a {128 * n * r * p >> 30} GiB derivation was tried"
        return Scrypt(salt=salt, length=length, n=n, r=r, p=p)

    import specsteer.privacy._keyring as keyring_module

    for module in (keyring_module, sys.modules.get("specsteer.privacy._kdf")):
        if module is not None and hasattr(module, "Scrypt"):
            monkeypatch.setattr(module, "Scrypt", bounded)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"n": 3}, "power of two"),
        ({"n": 2**24, "r": 64}, "power of two from 2 to 2\\*\\*20"),
        ({"n": 2**20, "r": 32, "p": 16}, "more than 1 GiB"),
        ({"r": 0}, "r must be"),
        ({"n": "32768"}, "integers"),
    ],
)
def test_stored_scrypt_cost_is_bounded(
    tmp_path: Path, no_big_scrypt: None, params: dict[str, Any], why: str
) -> None:
    Keyring(tmp_path, passphrase="pw")
    _meta(tmp_path, **params)
    with pytest.raises(KeyringCorruptedError, match=r"keyring\.json is unreadable") as caught:
        Keyring(tmp_path, passphrase="pw")
    assert "restore it from a backup" in str(caught.value)
    caught.match(why)


def test_signing_key_sealed_under_its_own_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = Keyring(tmp_path / "keys")
    log = AuditLog(tmp_path / "audit.jsonl", keyring=ring)
    log.append(destination="cloud", payload=b"{}", payload_type="VerifyRequest")
    public = log.public_key_pem()
    ring.protect_signing_key("correct horse")
    assert ring.signing_key_protected()
    assert "correct horse" not in (ring.root / "signing.key").read_text()

    with pytest.raises(WrongPassphraseError, match="SPECSTEER_SIGNING_PASSPHRASE"):
        AuditLog(tmp_path / "audit.jsonl", keyring=Keyring(tmp_path / "keys"))
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        Keyring(tmp_path / "keys").signing_key("battery staple")
    with pytest.raises(WrongPassphraseError, match="already sealed"):
        ring.protect_signing_key("again")

    monkeypatch.setenv("SPECSTEER_SIGNING_PASSPHRASE", "correct horse")
    again = AuditLog(tmp_path / "audit.jsonl", keyring=Keyring(tmp_path / "keys"))
    assert again.public_key_pem() == public  # the same key: earlier checkpoints still verify
    again.append(destination="cloud", payload=b"{}", payload_type="VerifyRequest")
    assert again.verify().ok
    assert verify_log(again.path, public_key=public).checkpoints == 2


def test_a_sealed_signing_key_keeps_its_public_key_beside_it(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    public = ring.signing_key().public_key().public_bytes_raw()
    ring.protect_signing_key("pw")
    fresh = Keyring(tmp_path / "keys")
    assert fresh.signing_public_key().public_bytes_raw() == public  # no passphrase needed

    # Someone swaps the stored public key: the writer's unsealing notices.
    path = ring.root / "signing.key"
    doc = json.loads(path.read_text())
    other = Keyring(tmp_path / "other").signing_key().public_key().public_bytes_raw()
    path.write_text(json.dumps({**doc, "public": base64.b64encode(other).decode()}))
    with pytest.raises(KeyringCorruptedError, match="does not match"):
        Keyring(tmp_path / "keys").signing_key("pw")

    # A key sealed before its public key was stored: a writer with the passphrase stores it.
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "public"}))
    with pytest.raises(WrongPassphraseError, match="SPECSTEER_SIGNING_PASSPHRASE"):
        Keyring(tmp_path / "keys").signing_public_key()
    Keyring(tmp_path / "keys").signing_key("pw")
    assert Keyring(tmp_path / "keys").signing_public_key().public_bytes_raw() == public


def test_a_new_signing_key_is_made_sealed_when_a_passphrase_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECSTEER_SIGNING_PASSPHRASE", "pw")
    AuditLog(tmp_path / "audit.jsonl", keyring=Keyring(tmp_path / "keys"))
    assert Keyring(tmp_path / "keys").signing_key_protected()
    monkeypatch.delenv("SPECSTEER_SIGNING_PASSPHRASE")
    with pytest.raises(WrongPassphraseError):
        Keyring(tmp_path / "keys").signing_key()
