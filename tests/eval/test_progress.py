"""The eval's progress: a step per finished pair, told to a callable, a terminal's bar, or
nothing; and the CLI's lines where stderr is not a terminal (a line at every tenth)."""

from __future__ import annotations

import itertools

import pytest
from rich.console import Console

from specsteer._cli import _ProgressLines
from specsteer._eval import _progress


def _lines(total: int) -> list[str]:
    out = Console(record=True, width=200, color_system=None)
    ticks = itertools.count(0, 5)
    lines = _ProgressLines(out, clock=lambda: float(next(ticks)))
    for done in range(1, total + 1):
        lines(done, total)
    return out.export_text().splitlines()


def test_a_line_at_every_tenth_and_at_the_end() -> None:
    lines = _lines(168)
    assert len(lines) == 10
    assert lines[0] == "evaluating: 17/168 answers (10%), 5 s"
    assert lines[-1] == "evaluating: 168/168 answers (100%), 50 s"


def test_a_short_run_prints_every_pair() -> None:
    assert [line.split(" answers")[0] for line in _lines(3)] == [
        "evaluating: 1/3",
        "evaluating: 2/3",
        "evaluating: 3/3",
    ]


def test_a_callable_is_told_each_finished_pair() -> None:
    told: list[tuple[int, int]] = []
    with _progress(lambda done, total: told.append((done, total)), 3) as step:
        for _ in range(3):
            step()
    assert told == [(1, 3), (2, 3), (3, 3)]


def test_the_library_writes_nothing_where_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for progress in (True, False):
        with _progress(progress, 2) as step:
            step()
            step()
    assert capsys.readouterr() == ("", "")
