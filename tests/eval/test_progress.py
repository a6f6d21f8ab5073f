"""The eval's progress where stderr is not a terminal: a line at every tenth of the run."""

from __future__ import annotations

import io
import itertools

import pytest

from specsteer._eval import _progress, _ProgressLines


def _lines(total: int) -> list[str]:
    out = io.StringIO()
    ticks = itertools.count(0, 5)
    step = _ProgressLines(total, out, clock=lambda: float(next(ticks)))
    for _ in range(total):
        step()
    return out.getvalue().splitlines()


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


def test_progress_goes_to_stderr_when_it_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _progress(True, 2) as step:
        step()
        step()
    assert capsys.readouterr().err.count("evaluating: ") == 2
    with _progress(False, 2) as step:
        step()
    assert capsys.readouterr().err == ""
