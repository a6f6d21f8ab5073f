"""Every ```python block of docs/evaluation.md runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "docs/evaluation.md lost its examples"
    namespace: dict[str, object] = {"__name__": "docs_evaluation"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"docs/evaluation.md python block {i} failed:\n{code}") from e
    assert len((tmp_path / "eval-demo" / "results.jsonl").read_text().splitlines()) == 4


def test_doc_keeps_the_results_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "## Results on the default pair" in text
    for option in (
        "--data",
        "--out",
        "--limit",
        "--methods",
        "--lam",
        "--max-new-tokens",
        "--tiny",
    ):
        assert f"`{option}" in text


@pytest.mark.parametrize("name", ["review_histories.jsonl", "long_review_histories.jsonl"])
def test_the_review_check_sets_load(name: str) -> None:
    """The check sets docs/evaluation.md runs `specsteer eval --data` on are datasets it reads:
    six review requests, each with four past reviews of other products."""
    from specsteer._addressing import is_review_request
    from specsteer._eval import load_examples

    examples = load_examples(DOC.parent / "eval" / name)
    assert len(examples) == 6 and all(len(e.profile) == 4 for e in examples)
    assert all(is_review_request(e.input) for e in examples)
