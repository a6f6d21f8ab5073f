"""Memory-store benchmark: ingest throughput and search latency, one user and many users.

The store is measured with a cheap stand-in embedder (a seeded random vector per text), so the
figures are the store's own cost: encryption, tags, chromadb writes and HNSW search. The real
embedder's throughput is measured separately on a sample; comparing the two says whether a real
ingest is bound by the embedder or by the store.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from specsteer._home import specsteer_home
from specsteer.memory._chroma import MemoryStore
from specsteer.memory._embedder import Embedder, HashEmbedder, normalize_rows
from specsteer.privacy import Keyring

__all__ = [
    "EmbedderThroughput",
    "MemoryBenchResult",
    "MemoryBenchRow",
    "render_markdown",
    "run_memory_bench",
]

_VOCAB = (
    "tea coffee dog cat sister brother Lisbon Oslo peanuts allergy jazz hiking running doctor "
    "meeting birthday gift recipe garden bike train flight hotel budget salary landlord piano "
    "guitar novel museum vegan gluten marathon yoga dentist school teacher project deadline "
    "football chess painting camera beach mountain winter summer holiday favourite prefers "
    "likes dislikes remembers usually always never morning evening weekend"
)
_WORDS = _VOCAB.split()


class _SeededEmbedder(Embedder):
    """A unit random vector per text, seeded by the text's hash: near-free, store-only cost."""

    def __init__(self, dim: int = 384) -> None:
        self._dim = dim
        self.name = f"bench-seeded-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self._dim)
        return normalize_rows(out)


@dataclass(frozen=True)
class MemoryBenchRow:
    """One measured configuration.

    Attributes:
        layout: ``"1 user"`` or ``"N users"``.
        memories: Memories in the store in total.
        ingest_per_s: Memories stored per second by ``add_many`` (store cost only).
        search_p50_ms: Median search latency (query embedding included, stand-in embedder).
        search_p99_ms: 99th-percentile search latency.
        queries: Searches timed.
    """

    layout: str
    memories: int
    ingest_per_s: float
    search_p50_ms: float
    search_p99_ms: float
    queries: int


@dataclass(frozen=True)
class EmbedderThroughput:
    """An embedder's own speed on a sample of texts.

    Attributes:
        name: The embedder.
        texts_per_s: Texts embedded per second.
        sample: Texts in the sample.
    """

    name: str
    texts_per_s: float
    sample: int


@dataclass(frozen=True)
class MemoryBenchResult:
    """Everything :func:`run_memory_bench` measured."""

    rows: tuple[MemoryBenchRow, ...]
    embedders: tuple[EmbedderThroughput, ...]
    dim: int
    batch_size: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def _texts(n: int, rng: np.random.Generator, start: int) -> list[str]:
    picks = rng.integers(0, len(_WORDS), size=(n, 8))
    return [f"{' '.join(_WORDS[j] for j in row)} #{start + i}" for i, row in enumerate(picks)]


def _embedder_speed(embedder: Embedder, texts: list[str]) -> EmbedderThroughput:
    embedder.embed(texts[:8])  # load and warm up
    t0 = time.perf_counter()
    embedder.embed(texts)
    dt = time.perf_counter() - t0
    return EmbedderThroughput(embedder.name, len(texts) / dt, len(texts))


def run_memory_bench(
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    users: int = 100,
    *,
    queries: int = 200,
    dim: int = 384,
    batch_size: int = 256,
    real_embedder: Embedder | bool | None = True,
    real_sample: int = 512,
    root: str | Path | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> MemoryBenchResult:
    """Measure ingest throughput and search latency at each size, for one user and for many.

    Each configuration runs in a fresh embedded store (and keyring) under ``root`` (default a
    scratch folder under ``specsteer_home()/bench``), removed afterwards.

    Args:
        sizes: Total memories per configuration.
        users: Users the memories are spread across in the many-user layout.
        queries: Searches timed per configuration (k=5, random user).
        dim: Vector dimension (384, as all-MiniLM-L6-v2).
        batch_size: ``MemoryStore(batch_size=...)`` for the ingest.
        real_embedder: The embedder whose own throughput to report; True for the bundled
            MiniLM, False or None to skip it.
        real_sample: Texts in the embedder sample.
        root: Scratch folder.
        seed: Seeds the synthetic texts and query choice.
        log: Called with a line of progress per configuration.

    Returns:
        The measurements.
    """
    rng = np.random.default_rng(seed)
    base = (
        Path(root) if root is not None else specsteer_home() / "bench" / f"memory-{time.time_ns()}"
    )
    rows: list[MemoryBenchRow] = []
    try:
        for size in sizes:
            for n_users in (1, users):
                if n_users > size:
                    continue
                where = base / f"{size}-{n_users}"
                store = MemoryStore(
                    where / "memory",
                    embedder=_SeededEmbedder(dim),
                    keyring=Keyring(where / "keys"),
                    batch_size=batch_size,
                )
                rows.append(_measure(store, size, n_users, queries, rng))
                if log is not None:
                    log(_progress_line(rows[-1]))
                shutil.rmtree(where, ignore_errors=True)
        embedders = _embedder_speeds(real_embedder, _texts(real_sample, rng, 0), dim)
    finally:
        if root is None:
            shutil.rmtree(base, ignore_errors=True)
    return MemoryBenchResult(
        rows=tuple(rows), embedders=tuple(embedders), dim=dim, batch_size=batch_size
    )


def _measure(
    store: MemoryStore, size: int, n_users: int, queries: int, rng: np.random.Generator
) -> MemoryBenchRow:
    """Ingest ``size`` memories spread over ``n_users`` users, then time ``queries`` searches;
    closes ``store``."""
    per_user = [size // n_users + (1 if u < size % n_users else 0) for u in range(n_users)]
    t0 = time.perf_counter()
    start = 0
    for u, count in enumerate(per_user):
        store.add_many(f"user{u}", _texts(count, rng, start), progress=False)
        start += count
    ingest = size / (time.perf_counter() - t0)
    latencies = []
    for q in range(queries + 5):
        user = f"user{int(rng.integers(0, n_users))}"
        query = " ".join(_WORDS[int(j)] for j in rng.integers(0, len(_WORDS), size=6))
        t1 = time.perf_counter()
        hits = store.search(user, query, k=5)
        if q >= 5:  # the first searches warm each index's cache
            latencies.append((time.perf_counter() - t1) * 1000)
        assert hits
    store.close()
    return MemoryBenchRow(
        layout="1 user" if n_users == 1 else f"{n_users} users",
        memories=size,
        ingest_per_s=ingest,
        search_p50_ms=float(np.percentile(latencies, 50)),
        search_p99_ms=float(np.percentile(latencies, 99)),
        queries=len(latencies),
    )


def _progress_line(row: MemoryBenchRow) -> str:
    return (
        f"{row.memories:>7} memories, {row.layout:>9}: ingest {row.ingest_per_s:,.0f}/s, "
        f"search p50 {row.search_p50_ms:.2f} ms, p99 {row.search_p99_ms:.2f} ms"
    )


def _embedder_speeds(
    real_embedder: Embedder | bool | None, sample: list[str], dim: int
) -> list[EmbedderThroughput]:
    """The stand-in embedder's throughput, and the real one's when asked for."""
    speeds = [_embedder_speed(HashEmbedder(dim), sample)]
    if real_embedder is True:
        from specsteer.memory._sentence import SentenceTransformerEmbedder

        speeds.append(_embedder_speed(SentenceTransformerEmbedder(), sample))
    elif isinstance(real_embedder, Embedder):
        speeds.append(_embedder_speed(real_embedder, sample))
    return speeds


def render_markdown(result: MemoryBenchResult) -> str:
    """Render the result as a markdown section (heading, two tables and the verdict)."""
    lines = [
        "## Memory store",
        "",
        f"Embedded chromadb store, one collection per user, AES-GCM sealing and keyed tags on every "
        f"row; {result.dim}-dimensional vectors from a near-free stand-in embedder, so these are "
        f"the store's own costs. Ingest is `add_many` in batches of {result.batch_size}; search is "
        "`search(k=5)` including the query's embedding.",
        "",
        "| memories | layout | ingest (memories/s) | search p50 (ms) | search p99 (ms) |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in result.rows:
        lines.append(
            f"| {r.memories:,} | {r.layout} | {r.ingest_per_s:,.0f} | {r.search_p50_ms:.2f} | "
            f"{r.search_p99_ms:.2f} |"
        )
    lines += ["", "| embedder | texts/s (CPU) | sample |", "|---|---:|---:|"]
    for e in result.embedders:
        lines.append(f"| {e.name} | {e.texts_per_s:,.0f} | {e.sample} |")
    real = list(result.embedders[1:])  # the first is always the hashing embedder
    if result.rows and real:
        slowest_store = min(r.ingest_per_s for r in result.rows)
        emb = real[-1].texts_per_s
        bound = "the embedder" if emb < slowest_store else "the store"
        lines += [
            "",
            f"Ingest with {real[-1].name} is bound by {bound}: the model embeds {emb:,.0f} texts/s, "
            f"the store writes at least {slowest_store:,.0f} memories/s.",
        ]
    return "\n".join(lines) + "\n"
