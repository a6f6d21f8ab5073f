"""The engine benchmark runs every method side by side and renders its tables (tiny models)."""

from __future__ import annotations

from specsteer._bench import (
    METHODS,
    render_engine,
    render_lengths,
    run_engine_bench,
    run_length_bench,
)
from specsteer.testing import tiny_backend


def test_engine_bench_runs_every_method_on_the_same_prompts() -> None:
    device, cloud = tiny_backend(0), tiny_backend(1)
    bench = run_engine_bench(
        device, cloud, pair="tiny", prompts=("what is my plan ?",), max_new_tokens=12, rtt_ms=5
    )
    assert list(bench.rows) == list(METHODS)
    for row in bench.rows.values():
        assert row.tokens > 0 and row.tokens_per_second > 0
    assert bench.rows["device_only"].cloud_calls == 0
    assert bench.rows["token_fusion"].cloud_calls >= bench.rows["specsteer"].cloud_calls
    md = render_engine(bench)
    assert "| specsteer |" in md and "round trip 5 ms" in md


def test_length_bench_reaches_each_length() -> None:
    bench = run_length_bench(tiny_backend(0), tiny_backend(1), pair="tiny", lengths=(16, 48))
    for method in ("device_only", "specsteer"):
        assert bench.tokens[method] == {16: 16, 48: 48}
        assert all(v > 0 for v in bench.ms_per_token[method].values())
    assert "ms/token @ 48" in render_lengths(bench)
