"""On-disk state stays private: folders 0700 and files 0600, tightened on every open, whatever
the umask, and whoever made them looser before."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import AuditLog, audit_export


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _loose(root: Path) -> list[str]:
    """Every path under ``root`` (and itself) that group or others may read."""
    found = [root, *root.rglob("*")]
    return [f"{oct(_mode(p))} {p.relative_to(root.parent)}" for p in found if _mode(p) & 0o077]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual desktop umask (022), as a user's shell would have it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_store_is_private_after_writes(specsteer_home: Path, open_umask: None) -> None:
    store = MemoryStore(embedder=HashEmbedder())
    store.add("maya", "My sister Lena lives in Lisbon.")
    store.add_many("maya", [f"note {i} about the garden" for i in range(40)])
    memory = specsteer_home / "memory"
    assert (memory / "chroma.sqlite3").exists()
    assert any(p.is_dir() for p in memory.iterdir()), "chromadb made no index folder"
    assert _loose(specsteer_home) == []
    assert os.umask(0o022) == 0o022, "the process umask was not restored"


def test_folders_made_loose_before_are_tightened_on_open(
    specsteer_home: Path, open_umask: None
) -> None:
    MemoryStore(embedder=HashEmbedder()).add("maya", "I am vegetarian.")
    AuditLog().append(destination="cloud", payload=b"{}", payload_type="VerifyRequest")
    for path in [specsteer_home, *specsteer_home.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert _loose(specsteer_home) != []

    store = MemoryStore(embedder=HashEmbedder())
    AuditLog()
    assert _loose(specsteer_home / "memory") == []
    assert _mode(specsteer_home) == 0o700
    assert _mode(specsteer_home / "audit") == 0o700
    assert [m.text for m in store.memories("maya")] == ["I am vegetarian."]


def test_torn_record_and_export_are_private(
    specsteer_home: Path, tmp_path: Path, open_umask: None
) -> None:
    log = AuditLog()
    log.append(destination="cloud", payload=b'{"a": 1}', payload_type="VerifyRequest")
    with open(log.path, "ab") as f:
        f.write(b'{"seq": 2, "destination": "half-writ')
    log.append(destination="cloud", payload=b'{"a": 2}', payload_type="VerifyRequest")
    assert _mode(log.path.with_name("audit.jsonl.torn")) == 0o600

    out = audit_export(tmp_path / "bundle", decrypt=True)
    assert json.loads((out / "verify.json").read_text())["ok"]
    assert _loose(out) == []


def test_a_loose_home_on_a_read_only_file_system_still_reads(
    specsteer_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    MemoryStore(embedder=HashEmbedder()).add("maya", "I am vegetarian.")
    for path in [specsteer_home, *specsteer_home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    def refuse(path: object, mode: int, **_: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "chmod", refuse)
    caplog.set_level(logging.DEBUG, logger="specsteer._home")  # said once per process
    store = MemoryStore(embedder=HashEmbedder())
    assert [m.text for m in store.memories("maya")] == ["I am vegetarian."]
    assert store.persona("maya").empty
    assert "the file system is read-only" in caplog.text
