"""Calibration: how fast each runtime computes a model on this machine, and how closely its
next-token distributions agree with float32 transformers on the same weights.

Every runtime is timed through the ``ModelBackend`` seam as the engine calls it, on one real chat
(:class:`Probe`): the prompt in one pass, single tokens on top of it (drafting, and the cloud
answering alone), and a block of ``draft + 1`` tokens on top of it (the cloud's verify pass, and
the device's context-free scoring of its draft). Each cost is the fastest of a few repeats, so
a burst of load from another process falls on no runtime in particular. The runtimes are ranked
by the cost of an answer of :attr:`Probe.rounds` rounds (:attr:`RuntimeTiming.answer_ms`).

Agreement is read on the positions that predict the answer's tokens (the rows drafting and
verifying read): the share of positions with the same most likely token, and KL(float32 ||
runtime) in nats. A runtime is eligible when it stays within :class:`AgreementBound`.

The clock is injected: tests time fake backends with a fake clock.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources

import torch

from specsteer.backends._base import ModelBackend

__all__ = [
    "AGREEMENT",
    "AgreementBound",
    "Probe",
    "RuntimeTiming",
    "calibrate",
    "fastest_agreeing",
    "pass_times",
    "probe_chat",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class AgreementBound:
    """How close to float32 a runtime's next-token distributions must stay to be chosen.

    docs/backends.md measured bfloat16 and llama.cpp over hundreds of answer positions at a mean
    KL of 0.0004-0.0015 nats and a top-1 agreement of 98-99%. The calibration chat has 48 answer
    positions (in the Qwen tokenizer), where each flipped near-tie costs two points of top-1, so
    the mean KL carries the decision (five times the measured runtimes') and top-1 only catches
    a runtime that is broken outright.
    """

    max_mean_kl: float = 0.005
    min_top1: float = 0.90


#: The bound runtimes are chosen under.
AGREEMENT = AgreementBound()


@dataclass(frozen=True)
class Probe:
    """What a calibration runs.

    Attributes:
        ids: one chat's tokens: the prompt, then the answer.
        answer_from: the first position whose logits predict an answer token.
        draft: tokens per draft (the block is ``draft + 1`` tokens).
        decode_steps: single tokens timed per repeat.
        repeats: how many times each cost is measured (the fastest is kept).
        rounds: rounds per answer in :attr:`RuntimeTiming.answer_ms`.
    """

    ids: tuple[int, ...]
    answer_from: int
    draft: int = 4
    decode_steps: int = 6
    repeats: int = 2
    rounds: int = 16

    def __post_init__(self) -> None:
        need = self.answer_from + 1 + max(self.decode_steps, self.draft + 1)
        if not 0 < self.answer_from < len(self.ids) - 1 or len(self.ids) < need:
            raise ValueError(f"a probe needs a prompt and {need - self.answer_from} answer tokens")


@dataclass(frozen=True)
class RuntimeTiming:
    """One runtime's calibration.

    Attributes:
        runtime: its name.
        prefill_ms: the probe's prompt in one pass.
        decode_ms: one token on top of the prompt.
        block_ms: a block of ``draft + 1`` tokens on top of the prompt, one pass.
        top1: share of answer positions with float32's most likely token (``None``: the
            reference itself).
        mean_kl: mean KL(float32 || runtime) over answer positions, nats.
        max_kl: the largest.
        error: why the runtime could not be measured (then it is never chosen).
    """

    runtime: str
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    block_ms: float = 0.0
    top1: float | None = None
    mean_kl: float | None = None
    max_kl: float | None = None
    error: str | None = None
    draft: int = 4
    rounds: int = 16

    @property
    def answer_ms(self) -> float:
        """The cost of an answer: the prompt, then ``rounds`` rounds of ``draft`` single tokens
        and one block."""
        return self.prefill_ms + self.rounds * (self.draft * self.decode_ms + self.block_ms)

    def agrees(self, bound: AgreementBound) -> bool:
        """Whether the runtime may be chosen under ``bound``."""
        if self.error is not None:
            return False
        if self.top1 is None or self.mean_kl is None:
            return True  # the reference
        return self.mean_kl <= bound.max_mean_kl and self.top1 >= bound.min_top1

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RuntimeTiming:
        return cls(**data)  # type: ignore[arg-type]


def probe_chat(backend: ModelBackend, **settings: int) -> Probe:
    """A :class:`Probe` over the first chat of the shipped personal-writing set (the user's
    memories as the system turn, the request, the reference answer), in ``backend``'s tokens."""
    path = resources.files("specsteer") / "data" / "personal_writing.jsonl"
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    memories = "\n".join(f"- {p['text']}" for p in row["profile"][:8])
    chat = [
        {"role": "system", "content": f"You are a helpful assistant.\n{memories}"},
        {"role": "user", "content": row["input"]},
    ]
    prompt = backend.encode_chat(chat, add_generation_prompt=True)
    answer = backend.encode(row["output"])
    return Probe(ids=(*prompt, *answer), answer_from=len(prompt) - 1, **settings)


def answer_log_probs(backend: ModelBackend, probe: Probe) -> torch.Tensor:
    """``[answer positions, V]`` log-probabilities at the positions that predict answer tokens."""
    logits, _ = backend.forward(list(probe.ids), None)
    return logits[probe.answer_from : -1].float().log_softmax(-1)


def _timed(backend: ModelBackend, probe: Probe, clock: Clock) -> tuple[float, float, float]:
    """One repeat: (prefill, median single token, block) in seconds."""
    ids, n = list(probe.ids), probe.answer_from + 1
    t0 = clock()
    _, cache = backend.forward_tail(ids[:n], None, 1)
    prefill = clock() - t0
    steps = []
    for i in range(probe.decode_steps):
        t0 = clock()
        _, cache = backend.forward_tail([ids[n + i]], cache, 1)
        steps.append(clock() - t0)
    cache = backend.crop(cache, n)
    if cache is None:  # a cache that cannot roll back: time the block on a fresh prompt
        _, cache = backend.forward_tail(ids[:n], None, 1)
    t0 = clock()
    backend.forward(ids[n : n + probe.draft + 1], cache)
    return prefill, statistics.median(steps), clock() - t0


def pass_times(
    backend: ModelBackend,
    context: Sequence[int],
    lengths: Sequence[int],
    *,
    clock: Clock = time.perf_counter,
    repeats: int = 2,
) -> list[tuple[int, float]]:
    """Milliseconds for one pass of ``n`` tokens on top of a cached ``context``, for each ``n``
    of ``lengths`` (the fastest of ``repeats``; the tokens scored are ``context``'s last ``n``,
    its head is cached first, untimed).

    Returns:
        one ``(n, ms)`` pair per length.
    """
    ids = list(context)
    head = len(ids) - max(lengths)
    if head < 1:
        raise ValueError(f"the context needs more than {max(lengths)} tokens")
    _, cache = backend.forward_tail(ids[:head], None, 1)
    out = []
    for n in lengths:
        best = float("inf")
        for _ in range(repeats):
            kept = backend.crop(cache, head)
            if kept is None:  # a cache that cannot roll back: cache the head again, untimed
                _, kept = backend.forward_tail(ids[:head], None, 1)
            t0 = clock()
            _, cache = backend.forward(ids[head : head + n], kept)
            best = min(best, clock() - t0)
        out.append((n, 1000 * best))
    return out


def measure(
    runtime: str,
    backend: ModelBackend,
    probe: Probe,
    reference: torch.Tensor | None,
    clock: Clock = time.perf_counter,
) -> tuple[RuntimeTiming, torch.Tensor]:
    """Time ``backend`` on ``probe`` and compare it with ``reference`` (float32's answer
    log-probabilities; ``None`` when ``backend`` is the reference).

    Returns:
        the timing, and this runtime's answer log-probabilities.
    """
    lp = answer_log_probs(backend, probe)  # [answer positions, V]; also warms the runtime up
    runs = [_timed(backend, probe, clock) for _ in range(probe.repeats)]
    prefill, decode, block = (1000 * min(r[i] for r in runs) for i in range(3))
    timing = RuntimeTiming(runtime, prefill, decode, block, draft=probe.draft, rounds=probe.rounds)
    if reference is not None:
        width = min(reference.shape[-1], lp.shape[-1])
        ref, got = reference[:, :width], lp[:, :width]
        kl = (ref.exp() * (ref - got)).sum(-1)  # [answer positions]
        top1 = (ref.argmax(-1) == got.argmax(-1)).float().mean()
        timing = replace(timing, top1=float(top1), mean_kl=float(kl.mean()), max_kl=float(kl.max()))
    return timing, lp


def calibrate(
    loaders: Mapping[str, Callable[[], ModelBackend]],
    reference: str,
    *,
    probe: Callable[[ModelBackend], Probe] = probe_chat,
    clock: Clock = time.perf_counter,
    report: Callable[[str], None] | None = None,
) -> list[RuntimeTiming]:
    """Load, time and compare every runtime of ``loaders``, one at a time (each is closed
    before the next loads, so only one copy of the model is in memory at once).

    Args:
        loaders: runtime name -> loader; must hold ``reference``.
        reference: the runtime the others are compared with (float32 transformers).
        probe: builds the probe from the first loaded backend's tokenizer.
        clock: seconds.
        report: called with one line per step (a progress display).
    """
    order = [reference, *(name for name in loaders if name != reference)]
    say = report or (lambda line: None)
    ref_lp: torch.Tensor | None = None
    made: Probe | None = None
    out: list[RuntimeTiming] = []
    for i, name in enumerate(order, 1):
        say(f"measuring runtime {i}/{len(order)}: {name}")
        try:
            backend = loaders[name]()
        except Exception as e:  # a runtime that cannot load is reported and never chosen
            logger.info("runtime %s could not be loaded: %s", name, e)
            out.append(RuntimeTiming(name, error=f"{type(e).__name__}: {e}"))
            continue
        try:
            made = made or probe(backend)
            timing, lp = measure(name, backend, made, ref_lp if name != reference else None, clock)
        finally:
            backend.close()
        if name == reference:
            ref_lp = lp
        elif ref_lp is None:  # nothing to compare with: never chosen
            timing = replace(timing, error=f"the reference {reference} could not be measured")
        out.append(timing)
    return out


def fastest_agreeing(
    timings: Sequence[RuntimeTiming], bound: AgreementBound = AGREEMENT
) -> RuntimeTiming | None:
    """The runtime with the cheapest answer among those within ``bound`` (``None``: none)."""
    eligible = [t for t in timings if t.agrees(bound)]
    return min(eligible, key=lambda t: t.answer_ms) if eligible else None
