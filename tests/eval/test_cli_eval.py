"""``specsteer eval`` through typer's ``CliRunner``, with the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from specsteer._cli import app

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["eval", *args])


def assert_clean_failure(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert message in " ".join(result.output.split())


def test_tiny_run_prints_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("--tiny", "--limit", "2", "--max-new-tokens", "6", "--lam", "0.1", "--lam", "2")
    assert result.exit_code == 0, result.output
    out = tmp_path / "eval-results"  # the default folder
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    methods = ["device_only", "cloud_only", "token_fusion", "speculative"]
    labels = [*methods, "specsteer@0.1", "specsteer@2"]
    assert [r["method"] for r in records] == labels * 2
    assert all(r["tokens"] <= 6 for r in records)
    for label in labels:
        assert f"| {label} | 2 |" in result.output
    assert "| specsteer@2 − cloud_only | 2 |" in result.output
    assert "summary.md" in result.output


def test_methods_and_a_comma_list_of_lams(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--tiny", "--limit", "1", "--max-new-tokens", "4", "--out", str(out))
    result = invoke(*args, "--methods", "cloud_only,specsteer", "--lam", "0.1,0.5")
    assert result.exit_code == 0, result.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["method"] for x in lines] == [
        "cloud_only",
        "specsteer@0.1",
        "specsteer@0.5",
    ]
    # Run again: everything is done, nothing is added.
    assert invoke(*args, "--methods", "cloud_only,specsteer", "--lam", "0.1,0.5").exit_code == 0
    assert (out / "results.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "missing.jsonl"), "cannot read the dataset missing.jsonl"),
        (("--methods", "device_only,gpt"), "unknown method 'gpt'"),
        (("--lam", "0.1,abc"), "--lam takes numbers"),
        (("--lam", "-1"), "every lam must be a finite number >= 0"),
    ],
)
def test_bad_input_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_clean_failure(invoke("--tiny", "--limit", "1", *args), message)


def test_a_bad_line_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("set.jsonl").write_text('{"user_id": "u", "input": "hi", "profile": []}\n')
    assert_clean_failure(invoke("--tiny", "--data", "set.jsonl"), "set.jsonl, line 1")


def test_help_names_the_purpose_and_the_options() -> None:
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Score every method on personal writing tasks" in text
    for option in (
        "--data",
        "--out",
        "--limit",
        "--methods",
        "--lam",
        "--max-new-tokens",
        "--tiny",
    ):
        assert option in text
    listed = runner.invoke(app, ["--help"]).output
    assert "eval" in {line.strip("│ ").split(" ")[0] for line in listed.splitlines()}
