"""Markdown tables, the targets and PNG plots for :mod:`specsteer._bench`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from specsteer._bench import EngineBench, LengthBench, MethodRow
from specsteer._bench_bound import DERIVATION, projected_speedup

__all__ = [
    "document",
    "engine_sections",
    "render_engine",
    "render_lengths",
    "render_margins",
    "render_projection",
    "targets",
]

#: The round-trip time the targets are judged at.
TARGET_RTT_MS = 20.0
#: The efficiency (measured over bound) SpecSteer's rows are held to.
EFFICIENCY_GOAL = 0.85
#: The paper's regime: a cloud this many times the device's cost per token ...
PAPER_COST_RATIOS = (20.0, 50.0)
#: ... and the speed-ups it reports there, per lam (arXiv 2603.16219).
PAPER_SPEEDUPS = {0.1: 2.36, 0.5: 1.74}


@dataclass(frozen=True)
class Target:
    """One of the paper-derived goals, as measured."""

    name: str
    goal: str
    value: float
    met: bool
    shown: str


def render_engine(bench: EngineBench) -> str:
    """A markdown section for one engine benchmark: each method, its bound and efficiency."""
    where = f"; {bench.footing}" if bench.footing else ""
    lines = [
        f"### Methods side by side: {bench.pair}, round trip {bench.rtt_ms:g} ms{where}",
        "",
        f"{bench.prompts} prompts, up to {bench.max_new_tokens} new tokens each, greedy, simulated "
        f"round trip {bench.rtt_ms:g} ms per cloud call; settings {bench.config}"
        + (f"; {bench.runtimes}" if bench.runtimes else "")
        + f"; load average {bench.load[0]:.1f} at the start, {bench.load[1]:.1f} at the end. "
        + _costs_line(bench),
        "",
        "| method | tokens | tokens/s | vs cloud_only | acceptance | α | tokens/round "
        "| guesses held | bound: tokens/round | bound: tokens/s | efficiency "
        "| efficiency, every guess held | cloud calls/token | bytes/token |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in bench.rows.values():
        lines.append(_engine_row(bench, row))
    return "\n".join(lines) + "\n"


def _costs_line(bench: EngineBench) -> str:
    costs = bench.costs
    if costs is None:
        return "Pass costs not timed (the cloud is not in this process): no bound."
    return (
        f"Pass costs through the seam (medians of {bench.prompts} timings per length, taken "
        f"before each prompt): device {costs.device}, so "
        f"{costs.device(1):.1f} ms per drafted token; cloud {costs.cloud}, so "
        f"{costs.cloud(1):.1f} ms per decoded token and {costs.cloud(5):.1f} ms for a verify "
        f"pass of 5; cost ratio c = {costs.cost_ratio:.2f}."
    )


def _engine_row(bench: EngineBench, row: MethodRow) -> str:
    acc = f"{row.acceptance:.0%}" if row.acceptance is not None else "-"
    tpr = f"{row.tokens / row.rounds:.2f}" if row.rounds else "-"
    bpt = f"{row.per_token(row.bytes_total):.0f}" if row.bytes_total else "-"
    held = f"{row.ahead_held}/{row.ahead}" if row.ahead else "-"
    bound = bench.bound(row)
    if bound is None:
        alpha = e = tps = eff = every = "-"
    else:
        alpha = f"{bound.alpha:.2f}" if bound.alpha is not None else "-"
        e = f"{bound.tokens_per_round:.2f}" if row.rounds else "-"
        tps = f"{bound.tokens_per_second:.1f}"
        eff = f"{row.tokens_per_second / bound.tokens_per_second:.2f}"
        every = f"{efficiency(bench, row, every_guess=True):.2f}" if row.ahead else eff
    return (
        f"| {row.label} | {row.tokens} | {row.tokens_per_second:.1f} "
        f"| {bench.ratio(row, 'cloud_only'):.2f}x | {acc} | {alpha} | {tpr} | {held} | {e} "
        f"| {tps} | {eff} | {every} | {row.per_token(row.cloud_calls):.3f} | {bpt} |"
    )


def efficiency(bench: EngineBench, row: MethodRow, *, every_guess: bool = False) -> float:
    """Measured tokens/s over the bound's (``nan`` without one); ``every_guess``: over the
    bound in which every draft made ahead is used."""
    bound = bench.bound(row, every_guess=every_guess)
    return row.tokens_per_second / bound.tokens_per_second if bound else float("nan")


def render_margins(engines: Sequence[EngineBench]) -> str:
    """SpecSteer against standard speculative decoding and token fusion on the same runtime,
    at each round trip of the first footing."""
    first = [b for b in engines if b.footing == engines[0].footing and b.pair == engines[0].pair]
    lams = [r.lam for r in first[0].rows.values() if r.method == "specsteer"]
    lines = [
        f"### SpecSteer against the other cloud-verified methods: {first[0].pair}, "
        f"{first[0].runtimes}",
        "",
        "Margin = SpecSteer's tokens/s over the other method's, minus one, in the same table.",
        "",
        "| round trip | "
        + " | ".join(f"λ={lam:g} vs speculative | λ={lam:g} vs token fusion" for lam in lams)
        + " |",
        "|---:|" + "---:|" * (2 * len(lams)),
    ]
    for bench in first:
        cells = []
        for lam in lams:
            row = bench.row("specsteer", lam)
            assert row is not None
            cells += [_margin(bench, row, "speculative"), _margin(bench, row, "token_fusion")]
        lines.append(f"| {bench.rtt_ms:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _margin(bench: EngineBench, row: MethodRow, method: str) -> str:
    ratio = bench.ratio(row, method)
    return "-" if math.isnan(ratio) else f"{ratio - 1:+.0%}"


def render_projection(bench: EngineBench) -> str:
    """The paper's regime, projected from this run's acceptance per lam (labelled as such)."""
    costs = bench.costs
    steer = [r for r in bench.rows.values() if r.method == "specsteer" and r.drafts]
    if costs is None or not steer:
        return ""
    head = " | ".join(
        f"c = 1/{ratio:g}, {way}" for ratio in PAPER_COST_RATIOS for way in ("seq.", "pipel.")
    )
    lines = [
        "### Projection (not a measurement): the paper's regime",
        "",
        f"SpecSteer's bound over the cloud alone's with the acceptance and draft lengths measured "
        f"above ({bench.pair}, {bench.runtimes}, round trip {bench.rtt_ms:g} ms) and the device's "
        "pass costs in their measured shape, for a cloud 20 or 50 times the device's cost per "
        "token whose verify pass costs the same at any block length (a GPU's), no round trip; "
        "sequential rounds, and rounds drafted ahead while the cloud verifies (pipelined). The "
        "paper reports its measured speed-ups on a 0.6B device and a 32B cloud.",
        "",
        f"| λ | acceptance | α | {head} | paper (measured there) |",
        "|---:|---:|---:|" + "---:|" * (2 * len(PAPER_COST_RATIOS) + 1),
    ]
    for row in steer:
        bound = bench.bound(row)
        assert bound is not None and bound.alpha is not None and row.lam is not None
        cells = [
            f"{projected_speedup(costs, 1 / ratio, drafts=row.drafts, accepted=row.accepted, pipelined=way, scores_beside=bench.device_verdict):.2f}x"
            for ratio in PAPER_COST_RATIOS
            for way in (False, True)
        ]
        paper = PAPER_SPEEDUPS.get(row.lam)
        lines.append(
            f"| {row.lam:g} | {row.acceptance:.0%} | {bound.alpha:.2f} | "
            + " | ".join(cells)
            + f" | {f'{paper:.2f}x' if paper else '-'} |"
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
        growth = _growth(bench, method)
        ratio = "-" if math.isnan(growth) else f"{growth:.2f}"  # one length: nothing to compare
        lines.append(f"| {method} | {cells} | {ratio} |")
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
    return lines + _growth_split(bench)


def _growth_split(bench: LengthBench) -> list[str]:
    """Each method's growth in cost per token, split into its two factors: what a round costs,
    and how many tokens a round yields (cost per token = ms per round / tokens per round)."""
    lines = []
    for method, per in bench.rounds.items():
        if len(per) < 2:
            continue
        first, last = min(per), max(per)
        cost = [1000 * per[n][3] / per[n][0] for n in (first, last)]
        made = [bench.tokens[method][n] / per[n][0] for n in (first, last)]
        lines.append(
            f"{method}, {first} to {last} tokens: ms per round x{cost[1] / cost[0]:.2f}, tokens "
            f"per round x{made[1] / made[0]:.2f}, so cost per token "
            f"x{cost[1] / cost[0] * made[0] / made[1]:.2f}."
        )
    return ["", *lines] if lines else []


def _growth(bench: LengthBench, method: str) -> float:
    per = bench.ms_per_token.get(method, {})
    if len(per) < 2:
        return float("nan")
    lengths = sorted(per)
    return per[lengths[-1]] / per[lengths[0]]


def targets(engines: Sequence[EngineBench], lengths: LengthBench) -> list[Target]:
    """The goals of the speed work, read off this run: SpecSteer near its bound, and faster than
    the other cloud-verified methods on the same runtime at every round trip."""
    first = _first_footing(engines)
    bench = next((b for b in first if b.rtt_ms == TARGET_RTT_MS), first[0])
    out: list[Target] = []
    for lam in (0.1, 0.5):
        row = bench.row("specsteer", lam)
        value = efficiency(bench, row) if row is not None else float("nan")
        if not math.isnan(value):
            goal = f">= {EFFICIENCY_GOAL:g}"
            name = f"SpecSteer λ={lam:g} efficiency (measured / bound), {bench.rtt_ms:g} ms"
            out.append(Target(name, goal, value, value >= EFFICIENCY_GOAL, f"{value:.2f}"))
    for each in first:
        row = each.row("specsteer", 0.1)
        for method in ("speculative", "token_fusion") if row is not None else ():
            assert row is not None
            value = each.ratio(row, method)
            name = f"SpecSteer λ=0.1 vs {method.replace('_', ' ')}, {each.rtt_ms:g} ms"
            out.append(Target(name, "> 1x", value, value > 1.0, f"{value:.2f}x"))
    row = bench.row("specsteer", 0.1)
    if row is not None:
        calls = row.per_token(row.cloud_calls)
        out.append(
            Target("cloud calls per token, λ=0.1", "<= 0.3", calls, calls <= 0.3, f"{calls:.3f}")
        )
    growth = _growth(lengths, "specsteer")
    if not math.isnan(growth):
        n = sorted(lengths.ms_per_token["specsteer"])
        name = f"cost/token at {n[-1]} vs {n[0]} tokens ({lengths.pair})"
        out.append(Target(name, "<= 1.2x", growth, growth <= 1.2, f"{growth:.2f}x"))
    return out


def _first_footing(engines: Sequence[EngineBench]) -> list[EngineBench]:
    """The tables of the first footing and pair (one per round trip)."""
    head = engines[0]
    return [b for b in engines if b.footing == head.footing and b.pair == head.pair]


def render_targets(items: Sequence[Target], bench: EngineBench) -> str:
    lines = [
        f"### Targets ({bench.pair}, {bench.runtimes})",
        "",
        "| target | goal | measured | met |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {t.name} | {t.goal} | {t.shown} | {'yes' if t.met else 'no'} |" for t in items]
    lines += _bounds(bench)
    return "\n".join(lines) + "\n"


def _bounds(bench: EngineBench) -> list[str]:
    """What bounds SpecSteer's speed in this run, from its own figures."""
    cloud, steer, costs = bench.row("cloud_only"), bench.row("specsteer", 0.1), bench.costs
    bound = bench.bound(steer) if steer is not None else None
    if cloud is None or steer is None or not steer.wall or costs is None or bound is None:
        return []
    cloud_bound, every = bench.bound(cloud), bench.bound(steer, every_guess=True)
    assert cloud_bound is not None and every is not None
    return [
        "",
        f"On {bench.pair} ({bench.runtimes}), round trip {bench.rtt_ms:g} ms, the cost ratio is "
        f"c = {costs.cost_ratio:.2f}: a drafted token costs {costs.cost_ratio:.0%} of a cloud "
        f"token, and a verify pass of 5 tokens costs {costs.cloud(5) / costs.cloud(1):.1f} cloud "
        f"tokens. At λ=0.1 and the measured acceptance (α = {bound.alpha or 0:.2f}) the bound is "
        f"{bound.tokens_per_second:.1f} tokens/s, "
        f"{bound.tokens_per_second / cloud_bound.tokens_per_second:.2f}x the cloud alone's bound; "
        f"SpecSteer measured {steer.tokens_per_second:.1f} tokens/s "
        f"({steer.tokens_per_second / bound.tokens_per_second:.0%} of its bound, "
        f"{bench.ratio(steer, 'cloud_only'):.2f}x cloud_only). Of its {steer.ahead} rounds that "
        f"passed whole with the next draft made ahead, {steer.ahead_held} used it; had all "
        f"used it, the bound would be {every.tokens_per_second:.1f} tokens/s and the efficiency "
        f"{steer.tokens_per_second / every.tokens_per_second:.0%}. It computed on the device "
        f"{steer.device_s / steer.wall:.0%} of its wall time and waited on the cloud "
        f"{steer.cloud_s / steer.wall:.0%} (the two overlap while drafting is pipelined).",
    ]


def engine_sections(
    engines: Sequence[EngineBench], lengths: LengthBench, output: Path | None
) -> list[str]:
    """Targets, one table per footing and round trip, the margins, the projection, the length
    table, and plots when writing."""
    first = _first_footing(engines)
    bench = next((b for b in first if b.rtt_ms == TARGET_RTT_MS), first[0])
    sections = [render_targets(targets(engines, lengths), bench)]
    sections += [render_engine(b) for b in engines]
    if any(b.row("specsteer") is not None for b in first):
        sections.append(render_margins(engines))
    projection = render_projection(bench)
    if projection:
        sections.append(projection)
    if bench.costs is not None:
        sections.append(DERIVATION)
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
            label = f"{bench.pair}, {bench.footing or 'as loaded'}, RTT {bench.rtt_ms:g} ms"
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
            "run; compare ratios within a table, not across machines. Within a table every "
            "method runs on the same two models on the same runtimes (the caption names them "
            "and the load average), so `cloud_only` and SpecSteer's cloud are one and the same. "
            "The device and the cloud model share this machine's cores: each computes on its "
            "own thread, so the figures model two machines of one core each, with the round "
            "trip simulated.",
            "",
            *sections,
        ]
    )
