"""``make bench``'s driver: run a :class:`~specsteer._bench.BenchPlan`, render its tables
(:mod:`specsteer._bench_report`) and write them to ``docs/benchmarks.md``."""

from __future__ import annotations

import functools
import os
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
    TEXT_PAIR,
    BenchPlan,
    EngineBench,
    LengthBench,
    run_engine_bench,
    run_length_bench,
)
from specsteer._config import GenerationConfig
from specsteer._defaults import DEFAULT_CONFIG
from specsteer._demo import DEMO_HISTORY
from specsteer._errors import MissingDependencyError
from specsteer.backends._base import ModelBackend

__all__ = ["Models", "embedded_models", "footing_runtimes", "run_all"]


#: Loads a pair's two models on a footing: ``models(pair, footing) -> (device, cloud)``.
Models = Callable[[str, str], tuple[ModelBackend, ModelBackend]]


def _machine(threads: int) -> str:
    from specsteer._runtimes import this_cpu

    return (
        f"CPU {this_cpu().describe()}, {os.cpu_count()} cores, {platform.system()}; device and "
        f"cloud on one thread each with {threads} torch thread(s); Python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def embedded_models(pair: str, footing: str) -> tuple[ModelBackend, ModelBackend]:
    """An embedded pair on a footing: ``calibrated`` (each model on the runtime measured fastest
    here, or named by the environment), else both Qwen models on the runtime ``footing`` names
    (SmolLM2 stays on float32 transformers)."""
    from specsteer._defaults import PAIRS, default_models
    from specsteer._models import (
        load_cloud_qwen_coder_1_5b,
        load_device_qwen_coder_0_5b,
        load_smollm2,
    )

    if footing == "calibrated" or pair not in PAIRS:  # an unknown pair: default_models says so
        return default_models(progress=False, pair=pair)
    if pair == TEXT_PAIR:
        return load_smollm2(), load_cloud_qwen_coder_1_5b(runtime=footing)
    return load_device_qwen_coder_0_5b(runtime=footing), load_cloud_qwen_coder_1_5b(runtime=footing)


def footing_runtimes(footing: str) -> tuple[str, str]:
    """The runtimes of the default pair's device and cloud models on ``footing`` (calibrating
    them if need be), to tell footings that would run the same thing apart."""
    from specsteer._models import cloud_runtime, device_runtime

    asked = None if footing == "calibrated" else footing
    return device_runtime(asked), cloud_runtime(asked)


def run_all(
    console: Console,
    *,
    plan: BenchPlan | None = None,
    output: Path | None = None,
    command: str = "",
    models: Models | None = None,
    runtimes: Callable[[str], tuple[str, str]] | None = None,
) -> str:
    """Run the plan, print the tables, and write them (and plots beside them) to ``output``.

    Args:
        models: loads a pair on a footing (default: :func:`embedded_models`).
        runtimes: a footing's runtimes, device and cloud (default: :func:`footing_runtimes`);
            a footing that runs what an earlier one ran is not run again.
    """
    plan = plan or BenchPlan()
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        return _run_plan(
            console, plan, output, command, models or embedded_models, runtimes or footing_runtimes
        )
    finally:
        torch.set_num_threads(threads)


def _run_plan(
    console: Console,
    plan: BenchPlan,
    output: Path | None,
    command: str,
    models: Models,
    runtimes: Callable[[str], tuple[str, str]],
) -> str:
    started = time.perf_counter()

    def note(msg: str) -> None:
        console.print(f"[dim]{msg}[/]")

    context = "\n".join(f"- {line}" for line in DEMO_HISTORY)
    base = DEFAULT_CONFIG.model_copy(update={"draft_tokens": plan.draft_tokens})
    engines: list[EngineBench] = []
    lengths: LengthBench | None = None
    seen: dict[tuple[str, str], str] = {}
    for footing in plan.footings:
        try:
            key = runtimes(footing) if len(plan.footings) > 1 else (footing, footing)
        except MissingDependencyError as e:  # e.g. llama.cpp not installed: the others still run
            note(f"{footing}: skipped ({e})")
            continue
        if key in seen:
            note(f"{footing}: the same runtimes as {seen[key]}, not run again")
            continue
        seen[key] = footing
        tables, measured = _footing_tables(
            plan, footing, lengths is None, models, note, context, base
        )
        engines += tables
        lengths = lengths or measured
    assert lengths is not None, "a plan has at least one footing"
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


def _footing_tables(
    plan: BenchPlan,
    footing: str,
    first: bool,
    models: Models,
    note: Callable[[str], None],
    context: str,
    base: GenerationConfig,
) -> tuple[list[EngineBench], LengthBench | None]:
    """One footing's tables: the first footing at every round trip, with the other pairs and
    the length table; the others at the targets' round trip. Its models are released after."""
    load = functools.cache(lambda pair: models(pair, footing))

    def side_by_side(pair: str, rtt: float) -> EngineBench:
        note(f"{pair} on {footing}, round trip {rtt:g} ms")
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
            footing=footing,
        )

    at = report.TARGET_RTT_MS if report.TARGET_RTT_MS in plan.rtts_ms else plan.rtts_ms[0]
    try:
        engines = [side_by_side(plan.pair, rtt) for rtt in (plan.rtts_ms if first else (at,))]
        if not first:
            return engines, None
        engines += [side_by_side(pair, at) for pair in plan.other_pairs]
        note(f"{plan.length_pair}: cost per token at {plan.lengths}")
        lengths = run_length_bench(
            *load(plan.length_pair),
            pair=plan.length_pair,
            lengths=plan.lengths,
            context=context,
            config=base,
        )
        return engines, lengths
    finally:
        load.cache_clear()  # one footing's models in memory at a time


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
