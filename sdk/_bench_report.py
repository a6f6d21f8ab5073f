"""Markdown tables, the paper's targets and PNG plots for :mod:`specsteer._bench`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from specsteer._bench import EngineBench, LengthBench, MethodRow

__all__ = ["document", "engine_sections", "render_engine", "render_lengths", "targets"]

#: The round-trip time the targets are judged at.
TARGET_RTT_MS = 20.0


@dataclass(frozen=True)
class Target:
    """One of the paper-derived goals, as measured."""

    name: str
    goal: str
    value: float
    met: bool
    shown: str


def render_engine(bench: EngineBench) -> str:
    """A markdown section for one engine benchmark."""
    lines = [
        f"### Methods side by side: {bench.pair}, round trip {bench.rtt_ms:g} ms",
        "",
        f"{bench.prompts} prompts, up to {bench.max_new_tokens} new tokens each, greedy, simulated "
        f"round trip {bench.rtt_ms:g} ms per cloud call; settings {bench.config}"
        + (f"; {bench.runtimes}." if bench.runtimes else "."),
        "",
        "| method | tokens | tokens/s | vs cloud_only | vs token fusion | vs device_only "
        "| acceptance | tokens/round | cloud calls/token | bytes/token |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in bench.rows.values():
        acc = f"{row.accepted / row.drafted:.0%}" if row.drafted else "-"
        tpr = f"{row.tokens / row.rounds:.2f}" if row.rounds else "-"
        bpt = f"{row.per_token(row.bytes_total):.0f}" if row.bytes_total else "-"
        ratios = " | ".join(
            f"{bench.ratio(row, m):.2f}x" for m in ("cloud_only", "token_fusion", "device_only")
        )
        lines.append(
            f"| {row.label} | {row.tokens} | {row.tokens_per_second:.1f} | {ratios} | {acc} | "
            f"{tpr} | {row.per_token(row.cloud_calls):.3f} | {bpt} |"
        )
    return "\n".join(lines) + "\n"


def render_lengths(bench: LengthBench) -> str:
    """A markdown section for the per-token cost at several lengths."""
    lengths = sorted({n for d in bench.ms_per_token.values() for n in d})
    head = " | ".join(f"ms/token @ {n}" for n in lengths)
    lines = [
        f"### Cost per output token vs output length: {bench.pair}",
        "",
        "End-of-sequence ignored so every run reaches its length; no network delay.",
        "",
        f"| method | {head} | ratio last/first |",
        "|---|" + "---:|" * (len(lengths) + 1),
    ]
    for method, per in bench.ms_per_token.items():
        vals = [per[n] for n in lengths]
        cells = " | ".join(f"{v:.1f}" for v in vals)
        lines.append(f"| {method} | {cells} | {_growth(bench, method):.2f} |")
    return "\n".join(lines + _round_costs(bench)) + "\n"


def _round_costs(bench: LengthBench) -> list[str]:
    """The rounds behind the per-token cost: a round's cost against how much it yields."""
    if not bench.rounds:
        return []
    lines = [
        "",
        "| method | length | rounds | acceptance | tokens/round | ms/round |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, per in bench.rounds.items():
        for n, (rounds, drafted, accepted, wall) in sorted(per.items()):
            acc = f"{accepted / drafted:.0%}" if drafted else "-"
            tokens = bench.tokens[method][n]
            lines.append(
                f"| {method} | {n} | {rounds} | {acc} | {tokens / rounds:.2f} | "
                f"{1000 * wall / rounds:.0f} |"
            )
    return lines


def _growth(bench: LengthBench, method: str) -> float:
    per = bench.ms_per_token.get(method, {})
    if len(per) < 2:
        return float("nan")
    lengths = sorted(per)
    return per[lengths[-1]] / per[lengths[0]]


def targets(engines: Sequence[EngineBench], lengths: LengthBench) -> list[Target]:
    """The goals of the speed work, read off this run."""
    bench = next((b for b in engines if b.rtt_ms == TARGET_RTT_MS), engines[0])
    out: list[Target] = []

    def ratio(lam: float, method: str, goal: float, name: str) -> None:
        row = bench.row("specsteer", lam)
        if row is not None:
            value = bench.ratio(row, method)
            out.append(Target(name, f">= {goal:g}x", value, value >= goal, f"{value:.2f}x"))

    ratio(0.1, "cloud_only", 2.5, "SpecSteer λ=0.1 vs cloud_only")
    ratio(0.5, "cloud_only", 1.8, "SpecSteer λ=0.5 vs cloud_only")
    ratio(0.1, "token_fusion", 4.0, "SpecSteer λ=0.1 vs token fusion")
    ratio(0.1, "device_only", 0.6, "SpecSteer λ=0.1 vs device_only")
    row = bench.row("specsteer", 0.1)
    if row is not None:
        calls = row.per_token(row.cloud_calls)
        out.append(
            Target("cloud calls per token, λ=0.1", "<= 0.3", calls, calls <= 0.3, f"{calls:.3f}")
        )
    growth = _growth(lengths, "specsteer")
    if not math.isnan(growth):
        n = sorted(lengths.ms_per_token["specsteer"])
        out.append(
            Target(
                f"cost/token at {n[-1]} vs {n[0]} tokens ({lengths.pair})",
                "<= 1.2x",
                growth,
                growth <= 1.2,
                f"{growth:.2f}x",
            )
        )
    return out


def render_targets(items: Sequence[Target], bench: EngineBench) -> str:
    lines = [
        f"### Targets (round trip {bench.rtt_ms:g} ms)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {t.name} | {t.goal} | {t.shown} | {'yes' if t.met else 'no'} |" for t in items]
    lines += _bounds(bench)
    return "\n".join(lines) + "\n"


def _bounds(bench: EngineBench) -> list[str]:
    """What bounds SpecSteer's speed in this run, from its own figures."""
    device, steer = bench.row("device_only"), bench.row("specsteer", 0.1)
    if device is None or steer is None or not steer.wall:
        return []
    return [
        "",
        f"On {bench.pair} ({bench.runtimes or 'runtimes not recorded'}), device_only runs at "
        f"{bench.ratio(device, 'cloud_only'):.2f}x cloud_only. SpecSteer drafts on the device "
        "every token it keeps but the recovered ones, so device_only's speed bounds it; and "
        "every round waits for one verify pass of the cloud model, whose cost on a CPU core "
        "grows with the block's length, where a GPU's barely does. At λ=0.1 SpecSteer computed "
        f"on the device {steer.device_s / steer.wall:.0%} of its wall time and waited on the "
        f"cloud {steer.cloud_s / steer.wall:.0%} (the two overlap while drafting is pipelined).",
    ]


def engine_sections(
    engines: Sequence[EngineBench], lengths: LengthBench, output: Path | None
) -> list[str]:
    """Targets, one table per round-trip time, the length table, and plots when writing."""
    bench = next((b for b in engines if b.rtt_ms == TARGET_RTT_MS), engines[0])
    sections = [render_targets(targets(engines, lengths), bench)]
    sections += [render_engine(b) for b in engines]
    sections.append(render_lengths(lengths))
    if output is not None:
        sections.append(_plots(engines, lengths, output.parent / "bench"))
    return sections


def _plots(engines: Sequence[EngineBench], lengths: LengthBench, folder: Path) -> str:
    """Two PNG charts next to the document; returns the markdown that shows them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)

    def save(name: str, draw: Callable[[object], None]) -> str:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        draw(ax)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        return f"![{name}](bench/{name})"

    def speeds(ax: object) -> None:
        width = 0.8 / len(engines)
        labels = list(engines[0].rows)
        for i, bench in enumerate(engines):
            vals = [_tps(bench.rows.get(label)) for label in labels]
            xs = [j + i * width for j in range(len(labels))]
            label = f"{bench.pair}, RTT {bench.rtt_ms:g} ms"
            ax.bar(xs, vals, width, label=label)  # type: ignore[attr-defined]
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20)  # type: ignore[attr-defined]
        ax.set_ylabel("tokens/s")  # type: ignore[attr-defined]
        ax.legend()  # type: ignore[attr-defined]

    def costs(ax: object) -> None:
        for method, per in lengths.ms_per_token.items():
            ns = sorted(per)
            ax.plot(ns, [per[n] for n in ns], marker="o", label=method)  # type: ignore[attr-defined]
        ax.set_xlabel("output tokens")  # type: ignore[attr-defined]
        ax.set_ylabel("ms per token")  # type: ignore[attr-defined]
        ax.set_ylim(bottom=0)  # type: ignore[attr-defined]
        ax.legend()  # type: ignore[attr-defined]

    return (
        "### Plots\n\n" + "\n\n".join([save("speed.png", speeds), save("length.png", costs)]) + "\n"
    )


def _tps(row: MethodRow | None) -> float:
    return row.tokens_per_second if row is not None else 0.0


def document(
    sections: Sequence[str], *, command: str, when: str, machine: str, seconds: float
) -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"Produced by `{command}` on {when} ({machine}), in {seconds:.0f} s. Figures from one "
            "run; compare ratios within a table, not across machines. The device and the cloud "
            "model share this machine's cores: each computes on its own thread, so the figures "
            "model two machines of one core each, with the round trip simulated.",
            "",
            *sections,
        ]
    )
