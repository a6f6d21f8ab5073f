"""The engine benchmark runs every method side by side and renders its tables (tiny models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from specsteer import GenerationConfig
from specsteer._bench import (
    PASS_LENGTHS,
    BenchPlan,
    LengthBench,
    run_engine_bench,
    run_length_bench,
)
from specsteer._bench_bound import alpha_from_acceptance
from specsteer._bench_report import (
    render_engine,
    render_lengths,
    render_margins,
    render_projection,
    render_targets,
    targets,
)
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
    # Every cloud round's draft length is kept for the bound; token fusion drafts nothing.
    assert len(row.drafts) == row.rounds and sum(row.drafts) == row.drafted
    assert set(bench.rows["token_fusion"].drafts) == {0}


def test_each_row_is_compared_with_its_bound_from_pass_costs_timed_in_the_run() -> None:
    device, cloud = tiny_backend(0), tiny_backend(1)
    bench = run_engine_bench(
        device,
        cloud,
        pair="tiny",
        prompts=("hi", "what is my plan ?"),
        max_new_tokens=8,
        rtt_ms=5,
        lams=(0.1,),
    )
    # Each prompt timed a pass of every length on both models, before its methods ran.
    assert sorted(n for n, _ in bench.device_passes) == sorted(2 * PASS_LENGTHS)
    assert len(bench.cloud_passes) == 2 * len(PASS_LENGTHS)
    costs = bench.costs
    assert costs is not None and costs.cloud(1) > 0 and costs.device(1) > 0
    md = render_engine(bench)
    assert f"cost ratio c = {costs.cost_ratio:.2f}" in md and "load average" in md
    steer = bench.rows["specsteer λ=0.1"]
    bound = bench.bound(steer)
    assert bound is not None and bound.alpha is not None
    assert bound.alpha == pytest.approx(
        alpha_from_acceptance(steer.accepted, steer.drafts), abs=1e-9
    )
    eff = steer.tokens_per_second / bound.tokens_per_second
    assert f"| {bound.tokens_per_second:.1f} | {eff:.2f} |" in md
    # No round passed whole between these two models, so no draft made ahead was used.
    assert steer.ahead == 0 and steer.guess_held == 1.0
    # token fusion: one pass of one token and one round trip per token, nothing drafted.
    fusion = bench.bound(bench.rows["token_fusion"])
    assert fusion is not None and fusion.tokens_per_second == pytest.approx(
        1000 / (costs.cloud(1) + 5)
    )
    device_only = bench.bound(bench.rows["device_only"])
    assert device_only is not None and device_only.tokens_per_second == pytest.approx(
        1000 / costs.device(1)
    )
    projection = render_projection(bench)
    assert "Projection (not a measurement)" in projection and "| 0.1 |" in projection
    assert "2.36x" in projection


def test_the_bound_counts_the_drafts_made_ahead_that_were_used() -> None:
    """Twins pass every draft whole and every guess of the token after it holds; a row whose
    guesses missed half the time is bounded below the row where all held. Judged in the cloud:
    judged on the device, a twin's context-free block pass costs what the cloud's pass does, and
    where the timings put it above, drafting ahead gains nothing to miss."""
    device, twin = tiny_backend(0), tiny_backend(0)
    cfg = GenerationConfig(adaptive_draft=False, draft_tokens=3, device_verdict=False)
    bench = run_engine_bench(
        device,
        twin,
        pair="twins",
        prompts=("hi",),
        max_new_tokens=12,
        rtt_ms=5,
        methods=("specsteer",),
        lams=(0.1,),
        config=cfg,
    )
    steer = bench.rows["specsteer λ=0.1"]
    assert steer.ahead == steer.rounds - 1 and steer.ahead_held == steer.ahead > 0
    assert f"| {steer.ahead_held}/{steer.ahead} |" in render_engine(bench)
    held, every = bench.bound(steer), bench.bound(steer, every_guess=True)
    assert held is not None and every is not None
    assert held.tokens_per_second == pytest.approx(every.tokens_per_second)
    steer.ahead_held = steer.ahead // 2
    missed = bench.bound(steer)
    assert missed is not None and missed.tokens_per_second < every.tokens_per_second


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


def test_length_growth_splits_into_round_cost_and_round_yield() -> None:
    # 64 tokens in 10 rounds of 100 ms; 512 tokens in 128 rounds of 110 ms.
    bench = LengthBench(
        pair="tiny",
        ms_per_token={"specsteer": {64: 1000 / 64, 512: 128 * 110 / 512}},
        tokens={"specsteer": {64: 64, 512: 512}},
        rounds={"specsteer": {64: (10, 40, 30, 1.0), 512: (128, 512, 300, 14.08)}},
    )
    md = render_lengths(bench)
    # 6.4 tokens per round fell to 4.0 (x0.62); 1.1 x 6.4 / 4.0 = 1.76 = 27.5 / 15.625.
    assert "ms per round x1.10, tokens per round x0.62, so cost per token x1.76." in md
    assert "| specsteer | 15.6 | 27.5 | 1.76 |" in md


def test_one_length_has_no_ratio_to_print() -> None:
    bench = run_length_bench(tiny_backend(0), tiny_backend(1), pair="tiny", lengths=(16,))
    md = render_lengths(bench)
    assert "nan" not in md
    assert md.count(" | - |") == len(bench.ms_per_token) == 2


def test_targets_read_the_table_they_judge() -> None:
    device, cloud = tiny_backend(0), tiny_backend(1)
    benches = [
        run_engine_bench(
            device,
            cloud,
            pair="tiny",
            prompts=("hi",),
            max_new_tokens=8,
            rtt_ms=rtt,
            lams=(0.1, 0.5),
            footing="calibrated",
        )
        for rtt in (0.0, 20.0)
    ]
    lengths = run_length_bench(device, cloud, pair="tiny", lengths=(8, 16))
    found = {t.name: t for t in targets(benches, lengths)}
    bench = benches[1]  # the targets' round trip, 20 ms
    spec = bench.rows["specsteer λ=0.1"]
    calls = found["cloud calls per token, λ=0.1"]
    assert calls.value == spec.cloud_calls / spec.tokens
    assert calls.met == (calls.value <= 0.3)
    bound = bench.bound(spec)
    assert bound is not None
    eff = found["SpecSteer λ=0.1 efficiency (measured / bound), 20 ms"]
    assert eff.value == spec.tokens_per_second / bound.tokens_per_second
    assert eff.met == (eff.value >= 0.85)
    for b in benches:  # against the other cloud-verified methods at every round trip
        row = b.rows["specsteer λ=0.1"]
        for method, name in (("speculative", "speculative"), ("token_fusion", "token fusion")):
            target = found[f"SpecSteer λ=0.1 vs {name}, {b.rtt_ms:g} ms"]
            assert target.value == b.ratio(row, method) and target.met == (target.value > 1)
    assert len(found) == 2 + 2 * 2 + 2
    text = render_targets(list(found.values()), bench)
    assert f"waited on the cloud {spec.cloud_s / spec.wall:.0%}" in text
    assert "the cost ratio is c = " in text
    margins = render_margins(benches)
    for b in benches:
        ratio = b.ratio(b.rows["specsteer λ=0.5"], "token_fusion")
        assert f"| {b.rtt_ms:g} ms |" in margins and f"{ratio - 1:+.0%}" in margins


def test_quick_run_writes_the_document_and_its_plots(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    plan = BenchPlan.quick(pair="tiny", length_pair="tiny", rtts_ms=(0.0, 5.0))
    doc = run_all(
        Console(file=open(tmp_path / "console.txt", "w")),  # noqa: SIM115
        plan=plan,
        output=out,
        command="specsteer bench --quick --tiny",
        models=lambda _pair, _footing: (tiny_backend(0), tiny_backend(1)),
    )
    assert out.read_text() == doc
    assert "`specsteer bench --quick --tiny`" in doc and "### Targets" in doc
    assert "### The bound each row is compared with" in doc and "eq. 1" in doc
    assert "round trip 0 ms" in doc and "round trip 5 ms" in doc
    for png in ("speed.png", "length.png"):
        assert (out.parent / "bench" / png).read_bytes()[:4] == b"\x89PNG"
        assert f"(bench/{png})" in doc


def test_a_footing_that_runs_what_another_ran_is_not_run_again(tmp_path: Path) -> None:
    loaded: list[tuple[str, str]] = []

    def models(pair: str, footing: str):  # type: ignore[no-untyped-def]
        loaded.append((pair, footing))
        return tiny_backend(0), tiny_backend(1)

    same = {"calibrated": ("llama.cpp", "llama.cpp"), "llama.cpp": ("llama.cpp", "llama.cpp")}
    plan = BenchPlan.quick(
        pair="tiny",
        length_pair="tiny",
        footings=("calibrated", "llama.cpp", "transformers"),
        max_new_tokens=6,
        lengths=(4, 8),
    )
    doc = run_all(
        Console(file=open(tmp_path / "console.txt", "w")),  # noqa: SIM115
        plan=plan,
        models=models,
        runtimes=lambda f: same.get(f, ("transformers-bfloat16", "transformers-bfloat16")),
    )
    assert [f for _, f in loaded] == ["calibrated", "transformers"]
    assert "round trip 20 ms; calibrated" in doc and "round trip 20 ms; transformers" in doc
    assert "; llama.cpp" not in doc
