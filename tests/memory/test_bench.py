"""The memory benchmark runs end to end at a tiny size and renders its markdown section."""

from __future__ import annotations

from pathlib import Path

from specsteer.memory import HashEmbedder
from specsteer.memory._bench import render_markdown, run_memory_bench


def test_bench_runs_small_and_renders(specsteer_home: Path) -> None:
    result = run_memory_bench(sizes=(60,), users=4, queries=10, real_embedder=HashEmbedder(64))
    assert [(r.layout, r.memories) for r in result.rows] == [("1 user", 60), ("4 users", 60)]
    for row in result.rows:
        assert row.ingest_per_s > 0 and 0 < row.search_p50_ms <= row.search_p99_ms
        assert row.queries == 10
    md = render_markdown(result)
    assert md.startswith("## Memory store")
    assert "| 60 | 4 users |" in md
    assert "bound by" in md
    # The scratch stores are removed afterwards.
    assert not any((specsteer_home / "bench").iterdir())
