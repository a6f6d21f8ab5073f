"""Every ```python block of docs/memory.md runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "memory.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = "# not run:"


def test_doc_examples_run(
    specsteer_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if not b.startswith(SKIP)]
    assert len(runnable) >= 8, "docs/memory.md lost its examples"
    namespace: dict[str, object] = {"__name__": "docs_memory"}
    for i, code in enumerate(runnable):
        try:
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"docs/memory.md python block {i} failed:\n{code}") from e
    assert (tmp_path / "alice.jsonl").exists()
