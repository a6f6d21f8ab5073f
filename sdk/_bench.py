"""Benchmarks: every decoding method side by side in one run, plus the other subsystems.

Speed figures on a shared machine are noisy, so every comparison here is made inside one run,
methods interleaved prompt by prompt, and reported as ratios next to the raw numbers. Before
each prompt both models' pass costs are timed through the seam (a pass of ``n`` tokens on a
cached prompt, for several ``n``), so the analytical bound each method is compared with
(:mod:`specsteer._bench_bound`) reads costs measured under the same load as the methods.

The device and the cloud model run in one process. To model two machines, each side computes on
its own thread with ``threads`` torch threads (one by default): the cloud's verification runs on
the decoder's exchange thread while the device drafts on the caller's.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from specsteer._bench_bound import Curve, MethodBound, PassCosts, method_bound
from specsteer._calibrate import pass_times
from specsteer._config import GenerationConfig, Method
from specsteer._defaults import DEFAULT_CONFIG, DEFAULT_PAIR
from specsteer._engine import Decoder, Wire
from specsteer._methods import METHOD_NAMES, method_spec
from specsteer._prompt import Prompt, build_prompt
from specsteer._result import GenerationResult
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier

__all__ = [
    "BENCH_PROMPTS",
    "BenchPlan",
    "EngineBench",
    "LengthBench",
    "MethodRow",
    "run_engine_bench",
    "run_length_bench",
]

#: Every method, side by side, in the registry's order.
METHODS: tuple[Method, ...] = METHOD_NAMES

BENCH_PROMPTS: tuple[str, ...] = (
    "Suggest a dinner I could cook tonight.",
    "Write a short birthday message for my sister.",
    "Plan my Saturday morning.",
    "What should I pack for a weekend trip to Lisbon?",
    "Recommend a book for my next flight.",
    "Draft a note to my landlord about the heating.",
    "What could I do this evening to relax?",
    "Write a toast for my best friend's wedding.",
)

#: The cross-vocabulary pair: the cost-per-token target is judged in text mode.
TEXT_PAIR = "smollm2-qwen1.5b"

#: Block lengths whose pass cost is timed through the seam before each prompt.
PASS_LENGTHS: tuple[int, ...] = (1, 2, 3, 5, 8, 13)
#: Text appended to a prompt so that the longest timed block has tokens to score.
_FILLER = " Here is a plan for a quiet evening: a walk by the river, dinner at home, a book."


@dataclass(frozen=True)
class BenchPlan:
    """What one ``specsteer bench`` run measures."""

    pair: str = DEFAULT_PAIR
    lams: tuple[float, ...] = (0.1, 0.5, 1.0)
    #: Round trips of the first footing's tables; the other footings run at the targets' one.
    rtts_ms: tuple[float, ...] = (0.0, 20.0, 80.0)
    #: Where the models run, one table each: ``calibrated`` (each model on the runtime measured
    #: fastest here), then both sides forced onto one runtime (``llama.cpp``, ``transformers``).
    #: A footing that runs what an earlier one ran is not run again.
    footings: tuple[str, ...] = ("calibrated", "llama.cpp", "transformers")
    draft_tokens: int = DEFAULT_CONFIG.draft_tokens
    prompts: int = 4
    max_new_tokens: int = 64
    lengths: tuple[int, ...] = (64, 512)
    length_pair: str = TEXT_PAIR
    #: Pairs also run side by side, at the targets' round-trip time (or the first) only.
    other_pairs: tuple[str, ...] = (TEXT_PAIR,)
    threads: int = 1
    subsystems: bool = True

    @classmethod
    def quick(cls, **changes: Any) -> BenchPlan:
        """A short run (tests, a first look)."""
        plan = cls(
            lams=(0.1,),
            rtts_ms=(20.0,),
            footings=("calibrated",),
            prompts=2,
            max_new_tokens=24,
            lengths=(16, 48),
            other_pairs=(),
            subsystems=False,
        )
        return replace(plan, **changes)


@dataclass
class MethodRow:
    """Totals of one method (at one ``lam``) over all prompts."""

    method: str
    lam: float | None = None
    tokens: int = 0
    wall: float = 0.0
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    cloud_calls: int = 0
    bytes_total: int = 0
    device_s: float = 0.0  # computing on the device (drafting beside the cloud included)
    cloud_s: float = 0.0  # waiting on the cloud: verify passes and round trips
    drafts: list[int] = field(default_factory=list)  # each cloud round's draft length
    ahead: int = 0  # whole rounds with the next draft made ahead on a guess
    ahead_held: int = 0  # ... of which the guess held

    @property
    def label(self) -> str:
        return self.method if self.lam is None else f"{self.method} λ={self.lam:g}"

    def add(self, result: GenerationResult) -> None:
        s = result.stats
        self.tokens += s.new_tokens
        self.wall += s.wall_seconds
        self.rounds += len(s.rounds)
        self.drafted += s.drafted_tokens
        self.accepted += s.accepted_tokens
        self.cloud_calls += s.cloud_calls
        self.bytes_total += s.bytes_sent + s.bytes_received
        self.device_s += s.device_seconds
        self.cloud_s += s.cloud_seconds
        self.drafts.extend(r.drafted for r in s.rounds if not r.local)
        made = [r.ahead for r in s.rounds if r.ahead is not None]
        self.ahead += len(made)
        self.ahead_held += sum(made)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0

    def per_token(self, value: float) -> float:
        return value / self.tokens if self.tokens else float("nan")

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    @property
    def guess_held(self) -> float:
        """The share of drafts made ahead that were used (1 when none was made)."""
        return self.ahead_held / self.ahead if self.ahead else 1.0


@dataclass
class EngineBench:
    """Result of :func:`run_engine_bench`."""

    pair: str
    rtt_ms: float
    max_new_tokens: int
    prompts: int
    config: dict[str, Any]
    rows: dict[str, MethodRow] = field(default_factory=dict)
    #: What computes each side, e.g. ``device on llama.cpp, cloud on transformers (bfloat16)``.
    runtimes: str = ""
    #: Where the models run (a :attr:`BenchPlan.footings` name).
    footing: str = ""
    #: Pass costs timed through the seam, ``(n tokens, ms)``, one set per prompt.
    device_passes: list[tuple[int, float]] = field(default_factory=list)
    cloud_passes: list[tuple[int, float]] = field(default_factory=list)
    #: The 1-minute load average when the table started and when it ended.
    load: tuple[float, float] = (0.0, 0.0)
    pipelined: bool = True
    #: Whether drafts were judged on the device, their context-free scoring beside the cloud's
    #: pass (``GenerationConfig.device_verdict`` with a cloud that returns every position's
    #: scores).
    device_verdict: bool = False

    def row(self, method: str, lam: float | None = None) -> MethodRow | None:
        """The row of ``method`` (at ``lam``, or its first ``lam``)."""
        for row in self.rows.values():
            if row.method == method and (lam is None or row.lam == lam):
                return row
        return None

    def ratio(self, row: MethodRow, method: str) -> float:
        """``row``'s tokens/s over ``method``'s."""
        ref = self.row(method)
        if ref is None or not ref.tokens_per_second:
            return float("nan")
        return row.tokens_per_second / ref.tokens_per_second

    @property
    def costs(self) -> PassCosts | None:
        """Both models' pass costs, from every timing of the run (``None``: not timed)."""
        if not self.device_passes or not self.cloud_passes:
            return None
        return PassCosts(_fit(self.device_passes), _fit(self.cloud_passes))

    def bound(self, row: MethodRow, *, every_guess: bool = False) -> MethodBound | None:
        """``row``'s analytical bound from this run's pass costs (``None``: not timed), with
        drafts made ahead used as often as they were (``every_guess``: always)."""
        costs = self.costs
        if costs is None:
            return None
        spec = method_spec(row.method)
        kind = {"none": "device", "generate": "cloud"}.get(spec.cloud, "rounds")
        return method_bound(
            kind,
            costs,
            self.rtt_ms,
            drafts=row.drafts,
            accepted=row.accepted,
            scores_draft=spec.drafter == "private",
            pipelined=self.pipelined,
            guess_held=1.0 if every_guess else row.guess_held,
            scores_beside=self.device_verdict,
        )


def _fit(points: Sequence[tuple[int, float]]) -> Curve:
    """The median cost of each length, joined by straight lines (medians: robust to a burst of
    load)."""
    by_n: dict[int, list[float]] = {}
    for n, ms in points:
        by_n.setdefault(n, []).append(ms)
    return Curve(tuple((float(n), statistics.median(v)) for n, v in sorted(by_n.items())))


def time_passes(
    device: ModelBackend, cloud: ModelBackend | None, prompt: Prompt, bench: EngineBench
) -> None:
    """Time a pass of each of :data:`PASS_LENGTHS` on both models, on top of the public prompt."""
    for model, out in ((device, bench.device_passes), (cloud, bench.cloud_passes)):
        if model is None:
            continue
        ids = model.encode_chat([m.model_dump() for m in prompt.public])
        filler = model.encode(_FILLER)
        while len(filler) <= max(PASS_LENGTHS):
            filler += filler
        out.extend(pass_times(model, ids + filler, PASS_LENGTHS, repeats=1))


@dataclass
class LengthBench:
    """Milliseconds per output token at several output lengths."""

    pair: str
    ms_per_token: dict[str, dict[int, float]] = field(default_factory=dict)
    tokens: dict[str, dict[int, int]] = field(default_factory=dict)
    #: Per cloud-verified method and length: (rounds, drafted, accepted, wall seconds).
    rounds: dict[str, dict[int, tuple[int, int, int, float]]] = field(default_factory=dict)


def _judges_here(decoder: Decoder) -> bool:
    """Whether the decoder's cloud returns every position's scores for the device to judge."""
    return decoder.cloud is not None and decoder.cloud.scores_every_position


def _network(cloud: ModelBackend, rtt_ms: float) -> CloudVerifier:
    inner = InProcessVerifier(cloud)
    if rtt_ms <= 0:
        return inner
    from specsteer.cloud_adapter import SimulatedNetwork

    return SimulatedNetwork(inner, rtt_ms=rtt_ms, seed=0)


def _two_machines(config: GenerationConfig | None) -> GenerationConfig:
    """``config``, pipelined unless it says otherwise: the bench models two machines (each side
    on its own threads), where the device drafts while the cloud verifies."""
    base = config or GenerationConfig()
    return base if base.pipeline is not None else base.model_copy(update={"pipeline": True})


def _rows(methods: Sequence[Method], lams: Sequence[float] | None) -> list[MethodRow]:
    rows: list[MethodRow] = []
    for method in methods:
        if method == "specsteer" and lams:
            rows.extend(MethodRow(method, lam) for lam in lams)
        else:
            rows.append(MethodRow(method))
    return rows


def run_engine_bench(
    device: ModelBackend,
    cloud: ModelBackend | CloudVerifier,
    *,
    pair: str,
    prompts: Sequence[str] = BENCH_PROMPTS[:4],
    context: str = "",
    max_new_tokens: int = 64,
    rtt_ms: float = 20.0,
    methods: Sequence[Method] = METHODS,
    lams: Sequence[float] | None = None,
    config: GenerationConfig | None = None,
    progress: Callable[[str], None] | None = None,
    wire: Wire = "auto",
    footing: str = "",
) -> EngineBench:
    """Run every method on the same prompts, interleaved, with a simulated network round trip.

    ``cloud_only`` sends one generate request and pays one round trip. With a verifier for
    ``cloud`` (a server over real HTTP) no delay is simulated and no pass is timed (so no bound
    is computed). ``lams`` gives SpecSteer one row per threshold (default: the config's).
    """
    base = _two_machines(config)
    if isinstance(cloud, CloudVerifier):
        decoder = Decoder(device, cloud, wire=wire)
    else:
        decoder = Decoder(device, _network(cloud, rtt_ms), cloud_backend=cloud)
    bench = EngineBench(
        pair=pair,
        rtt_ms=rtt_ms,
        max_new_tokens=max_new_tokens,
        prompts=len(prompts),
        config={"K": base.draft_tokens, "lam": base.lam, "beta": base.beta, "top_k": base.top_k},
        rows={r.label: r for r in _rows(methods, lams)},
        runtimes=decoder.runtimes,
        footing=footing,
        pipelined=bool(base.pipeline),
        device_verdict=base.device_verdict and _judges_here(decoder),
    )
    start_load = os.getloadavg()[0]
    warm = build_prompt(prompts[0], context)
    decoder.generate(warm, base.model_copy(update={"max_new_tokens": 4}))
    for i, text in enumerate(prompts):
        prompt = build_prompt(text, context)
        if not isinstance(cloud, CloudVerifier):
            time_passes(device, cloud, prompt, bench)
        for row in bench.rows.values():
            if progress:
                progress(f"{pair}: prompt {i + 1}/{len(prompts)}, {row.label}")
            update: dict[str, Any] = {"method": row.method, "max_new_tokens": max_new_tokens}
            if row.lam is not None:
                update["lam"] = row.lam
            result = decoder.generate(prompt, base.model_copy(update=update))
            row.add(result)
    bench.load = (start_load, os.getloadavg()[0])
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
    base = _two_machines(config)
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
            st = res.stats
            if st.rounds:
                out.rounds.setdefault(method, {})[n] = (
                    len(st.rounds),
                    st.drafted_tokens,
                    st.accepted_tokens,
                    st.wall_seconds,
                )
    return out
