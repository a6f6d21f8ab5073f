"""The engine benchmark runs every method side by side and renders its tables (tiny models)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from specsteer._bench import BenchPlan, run_engine_bench, run_length_bench
from specsteer._bench_report import render_engine, render_lengths, render_targets, targets
from specsteer._bench_run import run_all
from specsteer.testing import tiny_backend


def test_engine_bench_runs_every_method_on_the_same_prompts() -> None:
    device, cloud = tiny_backend(0), tiny_backend(1)
    bench = run_engine_bench(
        device,
        cloud,
        pair="tiny",
        prompts=("what is my plan ?",),
        max_new_tokens=12,
        rtt_ms=5,
        lams=(0.1, 0.5),
    )
    labels = ["device_only", "cloud_only", "token_fusion", "speculative"]
    assert list(bench.rows) == [*labels, "specsteer λ=0.1", "specsteer λ=0.5"]
    for row in bench.rows.values():
        assert row.tokens > 0 and row.tokens_per_second > 0
    assert bench.rows["device_only"].cloud_calls == 0
    assert bench.rows["cloud_only"].cloud_calls == 1
    assert bench.rows["token_fusion"].cloud_calls >= bench.rows["specsteer λ=0.1"].cloud_calls
    md = render_engine(bench)
    assert "| specsteer λ=0.5 |" in md and "round trip 5 ms" in md
    row = bench.rows["specsteer λ=0.1"]
    ratio = row.tokens_per_second / bench.rows["cloud_only"].tokens_per_second
    assert f"{ratio:.2f}x" in md
    assert bench.runtimes == "device on transformers (float32), cloud on transformers (float32)"
    assert bench.runtimes in md
    assert row.device_s > 0 and row.cloud_s > 0


def test_length_bench_reaches_each_length() -> None:
    bench = run_length_bench(tiny_backend(0), tiny_backend(1), pair="tiny", lengths=(16, 48))
    for method in ("device_only", "specsteer"):
        assert bench.tokens[method] == {16: 16, 48: 48}
        assert all(v > 0 for v in bench.ms_per_token[method].values())
    md = render_lengths(bench)
    assert "ms/token @ 48" in md
    # The rounds behind the cost: SpecSteer's every round at each length, none for device_only.
    assert "device_only" not in bench.rounds
    for n in (16, 48):
        rounds, drafted, accepted, wall = bench.rounds["specsteer"][n]
        assert 0 < rounds <= n and 0 <= accepted <= drafted and wall > 0
        assert f"| specsteer | {n} | {rounds} |" in md


def test_targets_read_the_table_they_judge() -> None:
    device, cloud = tiny_backend(0), tiny_backend(1)
    bench = run_engine_bench(
        device, cloud, pair="tiny", prompts=("hi",), max_new_tokens=8, rtt_ms=0, lams=(0.1, 0.5)
    )
    lengths = run_length_bench(device, cloud, pair="tiny", lengths=(8, 16))
    found = {t.name: t for t in targets([bench], lengths)}
    spec = bench.rows["specsteer λ=0.1"]
    calls = found["cloud calls per token, λ=0.1"]
    assert calls.value == spec.cloud_calls / spec.tokens
    assert calls.met == (calls.value <= 0.3)
    vs_cloud = found["SpecSteer λ=0.1 vs cloud_only"]
    assert vs_cloud.value == spec.tokens_per_second / bench.rows["cloud_only"].tokens_per_second
    assert len(found) == 6
    bounds = render_targets(list(found.values()), bench)
    share = f"waited on the cloud {spec.cloud_s / spec.wall:.0%}"
    assert share in bounds and "device_only runs at" in bounds


def test_quick_run_writes_the_document_and_its_plots(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    plan = BenchPlan.quick(pair="tiny", length_pair="tiny", rtts_ms=(0.0, 5.0))
    doc = run_all(
        Console(file=open(tmp_path / "console.txt", "w")),  # noqa: SIM115
        plan=plan,
        output=out,
        command="specsteer bench --quick --tiny",
        models=lambda _name: (tiny_backend(0), tiny_backend(1)),
    )
    assert out.read_text() == doc
    assert "`specsteer bench --quick --tiny`" in doc and "### Targets" in doc
    assert "round trip 0 ms" in doc and "round trip 5 ms" in doc
    for png in ("speed.png", "length.png"):
        assert (out.parent / "bench" / png).read_bytes()[:4] == b"\x89PNG"
        assert f"(bench/{png})" in doc
