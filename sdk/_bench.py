"""Benchmarks: every decoding method side by side in one run, plus the other subsystems.

Speed figures on a shared machine are noisy, so every comparison here is made inside one run,
methods interleaved prompt by prompt, and reported as ratios next to the raw numbers.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from specsteer._config import GenerationConfig, Method
from specsteer._demo import DEFAULT_CONFIG, DEMO_HISTORY
from specsteer._engine import Decoder, Wire, build_prompt
from specsteer._result import GenerationResult
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier

__all__ = [
    "BENCH_PROMPTS",
    "EngineBench",
    "LengthBench",
    "render_engine",
    "render_lengths",
    "run_all",
    "run_engine_bench",
    "run_length_bench",
]

METHODS: tuple[Method, ...] = (
    "device_only",
    "cloud_only",
    "token_fusion",
    "speculative",
    "specsteer",
)

BENCH_PROMPTS: tuple[str, ...] = (
    "Suggest a dinner I could cook tonight.",
    "Write a short birthday message for my sister.",
    "Plan my Saturday morning.",
    "What should I pack for a weekend trip to Lisbon?",
)


@dataclass
class MethodRow:
    """Totals of one method over all prompts."""

    method: str
    tokens: int = 0
    wall: float = 0.0
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    cloud_calls: int = 0
    bytes_total: int = 0

    def add(self, result: GenerationResult, extra_wall: float = 0.0) -> None:
        s = result.stats
        self.tokens += s.new_tokens
        self.wall += s.wall_seconds + extra_wall
        self.rounds += len(s.rounds)
        self.drafted += s.drafted_tokens
        self.accepted += s.accepted_tokens
        self.cloud_calls += s.cloud_calls
        self.bytes_total += s.bytes_sent + s.bytes_received

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0


@dataclass
class EngineBench:
    """Result of :func:`run_engine_bench`."""

    pair: str
    rtt_ms: float
    max_new_tokens: int
    prompts: int
    config: dict[str, Any]
    rows: dict[str, MethodRow] = field(default_factory=dict)


@dataclass
class LengthBench:
    """Milliseconds per output token at several output lengths."""

    pair: str
    ms_per_token: dict[str, dict[int, float]] = field(default_factory=dict)
    tokens: dict[str, dict[int, int]] = field(default_factory=dict)


def _network(cloud: ModelBackend, rtt_ms: float) -> CloudVerifier:
    inner = InProcessVerifier(cloud)
    if rtt_ms <= 0:
        return inner
    from specsteer.cloud_adapter import SimulatedNetwork

    return SimulatedNetwork(inner, rtt_ms=rtt_ms, seed=0)


def run_engine_bench(
    device: ModelBackend,
    cloud: ModelBackend | CloudVerifier,
    *,
    pair: str,
    prompts: Sequence[str] = BENCH_PROMPTS,
    context: str = "",
    max_new_tokens: int = 64,
    rtt_ms: float = 50.0,
    methods: Sequence[Method] = METHODS,
    config: GenerationConfig | None = None,
    progress: Callable[[str], None] | None = None,
    wire: Wire = "auto",
) -> EngineBench:
    """Run every method on the same prompts, interleaved, with a simulated network round trip.

    ``cloud_only`` runs the cloud model where it lives and pays one round trip per request.
    With a verifier for ``cloud`` (a server over real HTTP) no delay is simulated and
    ``cloud_only``, which needs the model in this process, is left out.
    """
    base = config or GenerationConfig()
    if isinstance(cloud, CloudVerifier):
        methods = [m for m in methods if m != "cloud_only"]
        decoder = Decoder(device, cloud, wire=wire)
    else:
        decoder = Decoder(device, _network(cloud, rtt_ms), cloud_backend=cloud)
    bench = EngineBench(
        pair=pair,
        rtt_ms=rtt_ms,
        max_new_tokens=max_new_tokens,
        prompts=len(prompts),
        config={"K": base.draft_tokens, "lam": base.lam, "beta": base.beta, "top_k": base.top_k},
        rows={m: MethodRow(m) for m in methods},
    )
    warm = build_prompt(prompts[0], context)
    decoder.generate(warm, base.model_copy(update={"max_new_tokens": 4}))
    for i, text in enumerate(prompts):
        prompt = build_prompt(text, context)
        for method in methods:
            if progress:
                progress(f"{pair}: prompt {i + 1}/{len(prompts)}, {method}")
            cfg = base.model_copy(update={"method": method, "max_new_tokens": max_new_tokens})
            result = decoder.generate(prompt, cfg)
            extra = rtt_ms / 1000 if method == "cloud_only" else 0.0
            bench.rows[method].add(result, extra)
    return bench


def run_length_bench(
    device: ModelBackend,
    cloud: ModelBackend,
    *,
    pair: str,
    lengths: Sequence[int] = (64, 512),
    methods: Sequence[Method] = ("device_only", "specsteer"),
    context: str = "",
    config: GenerationConfig | None = None,
) -> LengthBench:
    """Cost per output token at each length (no network delay: compute only)."""
    base = config or GenerationConfig()
    decoder = Decoder(device, InProcessVerifier(cloud), cloud_backend=cloud)
    prompt = build_prompt("Tell me a long story about a trip to the mountains.", context)
    out = LengthBench(pair=pair)
    for method in methods:
        for n in lengths:
            cfg = base.model_copy(
                update={"method": method, "max_new_tokens": n, "ignore_eos": True}
            )
            res = decoder.generate(prompt, cfg)
            out.ms_per_token.setdefault(method, {})[n] = (
                1000 * res.stats.wall_seconds / max(1, res.stats.new_tokens)
            )
            out.tokens.setdefault(method, {})[n] = res.stats.new_tokens
    return out


def render_engine(bench: EngineBench) -> str:
    """A markdown section for one engine benchmark."""
    ref = bench.rows.get("token_fusion")
    lines = [
        f"### Methods side by side: {bench.pair}",
        "",
        f"{bench.prompts} prompts, up to {bench.max_new_tokens} new tokens each, greedy, simulated "
        f"round trip {bench.rtt_ms:g} ms per cloud call; settings {bench.config}.",
        "",
        "| method | tokens | tokens/s | vs token fusion | acceptance | tokens/round | round trips | bytes/token |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in bench.rows.values():
        speed = row.tokens_per_second
        ratio = speed / ref.tokens_per_second if ref and ref.tokens_per_second else float("nan")
        acc = f"{row.accepted / row.drafted:.0%}" if row.drafted else "-"
        tpr = f"{row.tokens / row.rounds:.2f}" if row.rounds else "-"
        bpt = f"{row.bytes_total / row.tokens:.0f}" if row.tokens and row.bytes_total else "-"
        lines.append(
            f"| {row.method} | {row.tokens} | {speed:.1f} | {ratio:.2f}x | {acc} | {tpr} | "
            f"{row.cloud_calls} | {bpt} |"
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
        lines.append(f"| {method} | {cells} | {vals[-1] / vals[0]:.2f} |")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def run_all(
    console: Console, *, output: Path | None = None, quick: bool = False, command: str = ""
) -> str:
    """Run every benchmark, print the tables, and write them to ``output`` as markdown."""
    from specsteer._demo import default_models
    from specsteer._models import load_qwen_coder_0_5b

    sections: list[str] = []
    started = time.perf_counter()

    def note(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    context = "\n".join(f"- {line}" for line in DEMO_HISTORY)
    smol, qwen15 = default_models(progress=False)
    qwen05 = load_qwen_coder_0_5b()
    n_tokens = 32 if quick else 64
    prompts = BENCH_PROMPTS[:2] if quick else BENCH_PROMPTS
    pairs = (
        (
            "SmolLM2-135M (device) + Qwen2.5-Coder-1.5B (cloud), text mode",
            smol,
            qwen15,
            DEFAULT_CONFIG,
        ),
        (
            "Qwen2.5-Coder-0.5B (device) + Qwen2.5-Coder-1.5B (cloud), token ids",
            qwen05,
            qwen15,
            DEFAULT_CONFIG,
        ),
    )
    for pair, dev, cld, cfg in pairs:
        eb = run_engine_bench(
            dev,
            cld,
            pair=pair,
            prompts=prompts,
            context=context,
            max_new_tokens=n_tokens,
            config=cfg,
            progress=note,
        )
        sections.append(render_engine(eb))
        console.print(render_engine(eb))
    lengths = (64, 256) if quick else (64, 512)
    for pair, dev, cld, cfg in pairs:
        note(f"{pair}: cost per token at {lengths}")
        lb = run_length_bench(dev, cld, pair=pair, lengths=lengths, context=context, config=cfg)
        sections.append(render_lengths(lb))
        console.print(render_lengths(lb))

    for title, runner in _subsystem_benches(quick):
        note(f"running {title}")
        try:
            sections.append(runner())
        except Exception as e:  # a missing optional part must not lose the other results
            sections.append(f"### {title}\n\nnot run: {type(e).__name__}: {e}\n")
        console.print(sections[-1])

    doc = "\n".join(
        [
            "# Benchmarks",
            "",
            f"Produced by `{command or 'make bench'}` on {datetime.now(UTC):%Y-%m-%d} "
            f"({_machine()}), in {time.perf_counter() - started:.0f} s. Figures from one run; "
            "compare ratios within a table, not across machines.",
            "",
            *sections,
        ]
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(doc)
        console.print(f"wrote {output}")
    return doc


def _subsystem_benches(quick: bool) -> list[tuple[str, Callable[[], str]]]:
    benches: list[tuple[str, Callable[[], str]]] = []

    def memory() -> str:
        from specsteer.memory import _bench as mb

        sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
        return str(mb.render_markdown(mb.run_memory_bench(sizes=sizes)))

    def server() -> str:
        from specsteer.cloud_adapter import _bench as cb

        return str(cb.render_markdown(cb.run_server_bench()))

    benches.append(("memory store", memory))
    benches.append(("cloud verify server", server))
    return benches
