"""The attack's report: a markdown table per method and canary, and the trade-off plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_markdown", "render_plot"]

Record = Mapping[str, Any]


def _acc(cell: Record) -> str:
    if not cell.get("n"):
        return "—"
    return f"{cell['accuracy']:.2f} [{cell['low']:.2f}, {cell['high']:.2f}]"


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_markdown(report: Record) -> str:
    """The report as markdown: attack accuracy per method with 95% intervals, against chance,
    beside the answers' fact recall and speed; then canary exposure per method."""
    n = report["candidates"]
    lines = [
        f"{report['examples']} examples; each guess picks among up to {n} candidates of the same "
        f"kind (fewer where the set holds fewer of that kind: chance is the mean of "
        f"1/candidates, {_chance(report):.3f}); accuracy with its 95% Wilson interval.",
        "",
        "| method | guesses | string attacker | model attacker | chance | fact recall | "
        "tok/s | tokens kept for lift |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["methods"]:
        lines.append(
            f"| {row['method']} | {row['model'].get('n') or row['string']['n']} | "
            f"{_acc(row['string'])} | {_acc(row['model'])} | {row['string']['chance']:.3f} | "
            f"{_num(row['fact_recall'], 3)} | {row['tokens_per_second']:.2f} | "
            f"{row['lift_kept_tokens']:.1f} |"
        )
    return "\n".join([*lines, "", *_canary_lines(report.get("canaries", []))]) + "\n"


def _canary_lines(rows: Sequence[Record]) -> list[str]:
    if not rows:
        return []
    lines = [
        "Canary exposure (bits; log2 |R| - log2 rank under the model attacker), mean over canaries:",
        "",
        "| method | canaries | mean exposure | largest | leaked verbatim |",
        "|---|---:|---:|---:|---:|",
    ]
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r for r in rows if r["method"] == method]
        bits = [float(r["exposure"]) for r in mine]
        leaked = sum(bool(r["leaked_verbatim"]) for r in mine)
        lines.append(
            f"| {method} | {len(mine)} | {statistics.fmean(bits):.2f} | {max(bits):.2f} | "
            f"{leaked} of {len(mine)} |"
        )
    return lines


def _curves(report: Record) -> dict[str, list[Record]]:
    """SpecSteer's rows grouped by lam, each group ordered by tau (no policy last)."""
    curves: dict[str, list[Record]] = {}
    for row in report["methods"]:
        if row.get("lam") is not None and row["model"].get("n"):
            curves.setdefault(f"λ={row['lam']:g}", []).append(row)
    for rows in curves.values():
        rows.sort(key=lambda r: math.inf if r.get("tau") is None else float(r["tau"]))
    return curves


def render_plot(report: Record, path: Path) -> None:
    """Model-attacker accuracy against fact recall and tokens/s as tau varies, one curve per
    lam, with the cloud alone and the device alone as reference points.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'specsteer[eval]'``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], "fact_recall", "fact recall"),
        (axes[1], "tokens_per_second", "tokens/s"),
    ):
        for name, rows in _curves(report).items():
            xs = [r["model"]["accuracy"] for r in rows]
            ax.plot(xs, [r[key] or 0.0 for r in rows], marker="o", label=name)
            for r, x in zip(rows, xs, strict=True):
                tau = "no policy" if r.get("tau") is None else f"τ={r['tau']:g}"
                ax.annotate(
                    tau, (x, r[key] or 0.0), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        for row in report["methods"]:
            if row.get("lam") is None and row["model"].get("n"):
                ax.scatter(
                    [row["model"]["accuracy"]], [row[key] or 0.0], marker="s", label=row["method"]
                )
        ax.axvline(_chance(report), color="gray", linestyle=":", label="chance")
        ax.set_xlabel("model attacker's top-1 accuracy")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(
        "What the cloud learns, against what the answers gain, as the context-lift τ varies"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _chance(report: Record) -> float:
    """The attack's chance level: the mean of ``1 / candidates`` over the guesses (a fact of a
    kind the set holds few of has fewer candidates)."""
    rows = [float(r["string"]["chance"]) for r in report["methods"] if r["string"].get("chance")]
    return sum(rows) / len(rows) if rows else 1 / float(report["candidates"])
