"""``make bench``'s driver: run a :class:`~specsteer._bench.BenchPlan`, render its tables
(:mod:`specsteer._bench_report`) and write them to ``docs/benchmarks.md``."""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console

from specsteer import _bench_report as report
from specsteer._bench import (
    BENCH_PROMPTS,
    BenchPlan,
    EngineBench,
    run_engine_bench,
    run_length_bench,
)
from specsteer._defaults import DEFAULT_CONFIG
from specsteer._demo import DEMO_HISTORY
from specsteer.backends._base import ModelBackend

__all__ = ["run_all"]


def _machine(threads: int) -> str:
    return (
        f"{platform.machine()}, {platform.system()}, device and cloud on one thread each with "
        f"{threads} torch thread(s), Python {platform.python_version()}, torch {torch.__version__}"
    )


def run_all(
    console: Console,
    *,
    plan: BenchPlan | None = None,
    output: Path | None = None,
    command: str = "",
    models: Callable[[str], tuple[ModelBackend, ModelBackend]] | None = None,
) -> str:
    """Run the plan, print the tables, and write them (and plots beside them) to ``output``.

    Args:
        models: loads a pair by name (default: the embedded pairs).
    """
    plan = plan or BenchPlan()
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        return _run_plan(console, plan, output, command, models)
    finally:
        torch.set_num_threads(threads)


def _run_plan(
    console: Console,
    plan: BenchPlan,
    output: Path | None,
    command: str,
    models: Callable[[str], tuple[ModelBackend, ModelBackend]] | None,
) -> str:
    from specsteer._defaults import default_models

    load = functools.cache(models or (lambda name: default_models(progress=False, pair=name)))
    started = time.perf_counter()

    def note(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    context = "\n".join(f"- {line}" for line in DEMO_HISTORY)
    base = DEFAULT_CONFIG.model_copy(update={"draft_tokens": plan.draft_tokens})

    def side_by_side(pair: str, rtt: float) -> EngineBench:
        return run_engine_bench(
            *load(pair),
            pair=pair,
            prompts=BENCH_PROMPTS[: plan.prompts],
            context=context,
            max_new_tokens=plan.max_new_tokens,
            rtt_ms=rtt,
            lams=plan.lams,
            config=base,
            progress=note,
        )

    engines = [side_by_side(plan.pair, rtt) for rtt in plan.rtts_ms]
    at = report.TARGET_RTT_MS if report.TARGET_RTT_MS in plan.rtts_ms else plan.rtts_ms[0]
    engines += [side_by_side(pair, at) for pair in plan.other_pairs]
    note(f"{plan.length_pair}: cost per token at {plan.lengths}")
    lengths = run_length_bench(
        *load(plan.length_pair),
        pair=plan.length_pair,
        lengths=plan.lengths,
        context=context,
        config=base,
    )
    sections = report.engine_sections(engines, lengths, output)
    if plan.subsystems:
        sections.extend(_subsystem_sections(note))
    for section in sections:
        console.print(section, markup=False, highlight=False, soft_wrap=True)
    doc = report.document(
        sections,
        command=command or "make bench",
        when=f"{datetime.now(UTC):%Y-%m-%d}",
        machine=_machine(plan.threads),
        seconds=time.perf_counter() - started,
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(doc)
        console.print(f"wrote {output}")
    return doc


def _subsystem_sections(note: Callable[[str], None]) -> list[str]:
    sections = []
    for title, runner in _subsystem_benches():
        note(f"running {title}")
        try:
            sections.append(runner())
        except Exception as e:  # a missing optional part must not lose the other results
            sections.append(f"### {title}\n\nnot run: {type(e).__name__}: {e}\n")
    return sections


def _subsystem_benches() -> list[tuple[str, Callable[[], str]]]:
    def memory() -> str:
        from specsteer.memory import _bench as mb

        return str(mb.render_markdown(mb.run_memory_bench(sizes=(1_000, 10_000, 100_000))))

    def server() -> str:
        from specsteer.cloud_adapter import _bench as cb

        return str(cb.render_markdown(cb.run_server_bench()))

    return [("memory store", memory), ("cloud verify server", server)]
