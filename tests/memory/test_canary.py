"""Plant canaries, forget the user, and look for them in every byte the store keeps on disk."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import numpy as np
import pytest

from specsteer.memory import HashEmbedder, MemoryInput, MemoryStore, Person, Persona


def _needles(canary: str) -> list[bytes]:
    """The canary in clear and base64-encoded at each of the three byte alignments."""
    raw = canary.encode("utf-8")
    out = [raw, raw.upper(), raw.lower()]
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw)
        # Drop the edge groups, which depend on the bytes around the canary.
        out.append(enc[4 if shift else 0 : -4])
    return out


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def _found(needles: list[bytes], *roots: Path) -> list[str]:
    hits = []
    for path in _files(*roots):
        data = path.read_bytes()
        hits.extend(f"{path.name}: {n!r}" for n in needles if n in data)
    return hits


def _plant(store: MemoryStore, user: str) -> tuple[list[str], list[str]]:
    """Store canaries in every field a memory and the persona have; returns (canaries, texts)."""
    canaries = [f"canary{secrets.token_hex(10)}" for _ in range(11)]
    texts = [
        f"my bank PIN hint is {canaries[0]} remember it",
        f"the password for the {canaries[1]} account",
    ]
    store.add(user, texts[0], {"note": canaries[2], canaries[3]: "value"})
    store.add_many(
        user,
        [MemoryInput(texts[1], {"tag": canaries[4]}), f"bulk {canaries[5]}"],
        progress=False,
    )
    m = store.add(user, f"before update {canaries[6]}")
    store.update(user, m.id, text=f"after update {canaries[7]}")
    store.ingest_transcript(user, [{"role": "user", "content": f"chat about {canaries[0]}"}])
    persona = Persona(canaries[8], f"Cheers, {canaries[9]}", (Person(canaries[10], "sister"),))
    store.set_persona(user, persona)
    return canaries, texts


def test_nothing_readable_on_disk_before_or_after_forget(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    assert store.path is not None
    data_dir, key_dir = store.path, store.keyring.root
    alice_canaries, alice_texts = _plant(store, "alice")
    bob_canaries, _ = _plant(store, "bob")
    needles = [n for c in alice_canaries + bob_canaries for n in _needles(c)]
    # Encrypted at rest: no canary in clear or base64, even before forgetting.
    assert _found(needles, data_dir, key_dir) == []
    # The embedder's own vector of a memory is nowhere on disk: the store holds it turned by
    # the user's key. Positive control: the scan does find the turned vector.
    raw = HashEmbedder().embed([alice_texts[0]]).astype(np.float32)
    opened = store._users.open("alice")
    assert opened is not None
    vec = opened[0].turn(raw)[0].tobytes()
    assert not any(raw[0].tobytes() in p.read_bytes() for p in _files(data_dir))
    assert any(vec in p.read_bytes() for p in _files(data_dir))

    store.forget_user("alice")

    assert _found(needles, data_dir, key_dir) == []
    # With purge_vectors (the default) alice's vectors are gone from disk too.
    assert not any(vec in p.read_bytes() for p in _files(data_dir))
    # Her key is gone; bob's memories are intact and readable.
    assert not (key_dir / "users" / "alice.key").exists()
    assert store.count("bob") == 5
    assert any(bob_canaries[0] in t for t in store.all_texts("bob"))
    # A brand-new store over the same folders finds nothing of alice.
    fresh = MemoryStore(embedder=HashEmbedder())
    assert fresh.count("alice") == 0
    assert fresh.search("alice", alice_texts[0]) == []
    assert fresh.persona("alice").empty and fresh.persona("bob").name == bob_canaries[8]


def test_forget_without_purge_leaves_only_unopenable_ciphertext(specsteer_home: Path) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    canaries, _ = _plant(store, "alice")
    col = next(c for c in store._client.list_collections() if c.name.startswith("u-"))
    sealed = [row["_s"] for row in col.get(include=["metadatas"])["metadatas"]]
    assert sealed
    store.forget_user("alice", purge_vectors=False)
    assert _found([n for c in canaries for n in _needles(c)], store.path, store.keyring.root) == []
    # Whatever sealed blobs survive in SQLite's free pages, no key left on the device opens them.
    from specsteer.privacy import KeyDestroyedError

    with pytest.raises(KeyDestroyedError):
        store.keyring.data_keys("alice")
    for path in (store.keyring.root / "users").iterdir():
        assert b"alice" not in path.read_bytes() or path.suffix == ".forgotten"


def test_server_store_keeps_no_plaintext(
    specsteer_home: Path, chroma_server: str, tmp_path: Path
) -> None:
    from specsteer.privacy import Keyring

    store = MemoryStore(url=chroma_server, embedder=HashEmbedder(), keyring=Keyring())
    canaries, _ = _plant(store, "alice")
    # What the server holds, read back over its own API: ciphertext and tags only.
    col = next(
        c for c in store._client.list_collections() if c.name == store._users.name_for("alice")
    )
    dump = repr((col.get(include=["metadatas", "documents"]), col.metadata)).encode()
    assert store.persona("alice").name == canaries[8]
    assert canaries[0][:6] == "canary"
    assert not any(n in dump for c in canaries for n in _needles(c))
    assert b"alice" not in dump and b"alice" not in col.name.encode()
    store.forget_user("alice")
    assert store._users.name_for("alice") not in {c.name for c in store._client.list_collections()}
