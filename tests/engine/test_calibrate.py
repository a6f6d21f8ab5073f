"""Runtimes chosen by measurement: each candidate is timed through the seam with an injected
clock and compared with float32; the fastest that agrees wins, and the choice is kept per CPU.

The backends here are tiny real models whose every pass costs simulated seconds on a fake
clock, so "bfloat16 is slow on this CPU" is a cost model, not a timed test."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from specsteer._calibrate import AgreementBound, Probe, calibrate, fastest_agreeing, probe_chat
from specsteer._runtimes import (
    BFLOAT16,
    CLOUD_RUNTIME_ENV,
    DEVICE_RUNTIME_ENV,
    FLOAT32,
    LLAMA_CPP,
    Cpu,
    RuntimeStore,
    choose_runtime,
    reporting,
    this_cpu,
)
from specsteer.backends import ModelBackend, TransformersBackend
from specsteer.testing import tiny_backend

AVX2 = Cpu("AMD EPYC 7B13", frozenset({"avx2", "fma", "f16c"}))
AVX512_BF16 = Cpu("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_bf16"}))


@pytest.fixture(autouse=True)
def no_runtime_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unnamed runtimes are measured (the test suite names one elsewhere)."""
    monkeypatch.delenv(DEVICE_RUNTIME_ENV, raising=False)
    monkeypatch.delenv(CLOUD_RUNTIME_ENV, raising=False)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Costed(ModelBackend):
    """A tiny model whose passes cost ``per_pass + per_token * len(ids)`` fake seconds, its
    logits optionally perturbed (a runtime that disagrees with float32)."""

    def __init__(
        self,
        clock: FakeClock,
        per_pass: float,
        per_token: float,
        noise: float = 0.0,
        inner: TransformersBackend | None = None,
    ) -> None:
        self.inner = inner or tiny_backend(0)
        self.clock, self.per_pass, self.per_token, self.noise = clock, per_pass, per_token, noise
        self.closed = False

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self.inner.eos_token_ids

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        self.clock.now += self.per_pass + self.per_token * len(ids)
        logits, cache = self.inner.forward(ids, cache)
        if self.noise:
            gen = torch.Generator().manual_seed(len(ids))
            logits = logits + self.noise * torch.randn(logits.shape, generator=gen)
        return logits, cache

    def crop(self, cache: Any, length: int) -> Any | None:
        return self.inner.crop(cache, length)

    def encode_chat(self, messages: Any, *, add_generation_prompt: bool = True) -> list[int]:
        return self.inner.encode_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)

    def close(self) -> None:
        self.closed = True


def tiny_probe(backend: ModelBackend) -> Probe:
    """A prompt of 20 tokens and an answer of 12, in the tiny vocabulary."""
    return Probe(ids=tuple(range(5, 37)), answer_from=19, decode_steps=4)


def _never(name: str) -> Callable[[], ModelBackend]:
    def load() -> ModelBackend:
        raise AssertionError(f"{name} must not be measured here")

    return load


#: Per pass and per token costs, in seconds, shaped like docs/backends.md's tables: llama.cpp
#: cheap per token, float32 dear, bfloat16 cheap where native and dearest where emulated.
COSTS = {
    LLAMA_CPP: (0.03, 0.02),
    FLOAT32: (0.30, 0.05),
    "bf16-native": (0.25, 0.02),
    "bf16-emulated": (0.50, 0.10),
}


def loaders(clock: FakeClock, costs: dict[str, tuple[float, float]], noise: dict[str, float]):  # type: ignore[no-untyped-def]
    made: dict[str, list[Costed]] = {}

    def loader(name: str) -> Callable[[], ModelBackend]:
        def load() -> ModelBackend:
            backend = Costed(clock, *costs[name], noise=noise.get(name, 0.0))
            made.setdefault(name, []).append(backend)
            return backend

        return load

    return {name: loader(name) for name in costs}, made


def test_bfloat16_is_never_measured_without_native_support(tmp_path: Path) -> None:
    clock = FakeClock()
    table, made = loaders(clock, {FLOAT32: COSTS[FLOAT32], LLAMA_CPP: COSTS[LLAMA_CPP]}, {})
    table[BFLOAT16] = _never(BFLOAT16)
    measure = functools.partial(calibrate, clock=clock, probe=tiny_probe)
    choice = choose_runtime(
        "m",
        "cloud",
        table,
        RuntimeStore(tmp_path / "r.json"),
        cpu=AVX2,
        llama_cpp=True,
        measure=measure,
    )
    assert choice.runtime == LLAMA_CPP and choice.how == "measured"
    assert [t.runtime for t in choice.timings] == [FLOAT32, LLAMA_CPP]
    assert all(b.closed for bs in made.values() for b in bs)  # every measured copy was released


@pytest.mark.parametrize(
    ("bf16", "expected"), [("bf16-native", BFLOAT16), ("bf16-emulated", FLOAT32)]
)
def test_the_fastest_runtime_that_agrees_wins(tmp_path: Path, bf16: str, expected: str) -> None:
    """Without llama.cpp, bfloat16 wins where it is fast and loses to float32 where it is slow
    (a CPU that claims the flag but emulates it, as the fake clock makes it)."""
    clock = FakeClock()
    costs = {FLOAT32: COSTS[FLOAT32], BFLOAT16: COSTS[bf16]}
    table, _ = loaders(clock, costs, {})
    table[LLAMA_CPP] = _never(LLAMA_CPP)
    choice = choose_runtime(
        "m",
        "device",
        table,
        RuntimeStore(tmp_path / "r.json"),
        cpu=AVX512_BF16,
        llama_cpp=False,
        measure=functools.partial(calibrate, clock=clock, probe=tiny_probe),
    )
    assert choice.runtime == expected
    by_name = {t.runtime: t for t in choice.timings}
    # The costs are read through the seam: a pass of n tokens costs per_pass + n * per_token.
    per_pass, per_token = costs[BFLOAT16]
    assert by_name[BFLOAT16].decode_ms == pytest.approx(1000 * (per_pass + per_token))
    assert by_name[BFLOAT16].block_ms == pytest.approx(1000 * (per_pass + 5 * per_token))
    assert by_name[BFLOAT16].prefill_ms == pytest.approx(1000 * (per_pass + 20 * per_token))
    assert by_name[BFLOAT16].top1 == 1.0 and by_name[BFLOAT16].mean_kl == pytest.approx(0, abs=1e-6)


def test_a_fast_runtime_that_disagrees_with_float32_is_not_chosen(tmp_path: Path) -> None:
    clock = FakeClock()
    table, _ = loaders(
        clock, {FLOAT32: COSTS[FLOAT32], LLAMA_CPP: COSTS[LLAMA_CPP]}, {LLAMA_CPP: 30.0}
    )
    timings = calibrate(table, FLOAT32, clock=clock, probe=tiny_probe)
    llama = next(t for t in timings if t.runtime == LLAMA_CPP)
    assert llama.answer_ms < timings[0].answer_ms  # the fastest ...
    assert llama.mean_kl is not None and llama.mean_kl > AgreementBound().max_mean_kl
    assert not llama.agrees(AgreementBound())
    best = fastest_agreeing(timings)
    assert best is not None and best.runtime == FLOAT32  # ... but it is not chosen


def test_a_runtime_that_fails_to_load_is_reported_and_skipped(tmp_path: Path) -> None:
    clock = FakeClock()
    table, _ = loaders(clock, {FLOAT32: COSTS[FLOAT32]}, {})

    def broken() -> ModelBackend:
        raise OSError("no such library")

    table[LLAMA_CPP] = broken
    timings = calibrate(table, FLOAT32, clock=clock, probe=tiny_probe)
    assert timings[1].error == "OSError: no such library" and not timings[1].agrees(
        AgreementBound()
    )
    assert fastest_agreeing(timings) == timings[0]


def test_the_choice_is_kept_per_cpu(tmp_path: Path) -> None:
    clock = FakeClock()
    costs = {FLOAT32: COSTS[FLOAT32], LLAMA_CPP: COSTS[LLAMA_CPP], BFLOAT16: COSTS["bf16-native"]}
    table, _ = loaders(clock, costs, {})
    store = RuntimeStore(tmp_path / "runtimes.json")
    calls: list[list[str]] = []

    def measure(loaders: Any, reference: str, **kw: Any) -> Any:
        calls.append(list(loaders))
        return calibrate(loaders, reference, clock=clock, probe=tiny_probe, **kw)

    def choose(cpu: Cpu):  # type: ignore[no-untyped-def]
        return choose_runtime("m", "cloud", table, store, cpu=cpu, llama_cpp=True, measure=measure)

    first = choose(AVX2)
    again = choose(AVX2)
    assert (first.how, again.how) == ("measured", "cached") and first.runtime == again.runtime
    assert again.timings == first.timings
    other = choose(AVX512_BF16)  # another CPU measures again, with bfloat16 among the candidates
    assert other.how == "measured" and calls == [
        [FLOAT32, LLAMA_CPP],
        [FLOAT32, BFLOAT16, LLAMA_CPP],
    ]
    # A new store object reads the same file.
    again = choose_runtime(
        "m", "cloud", table, RuntimeStore(store.path), cpu=AVX2, llama_cpp=True, measure=measure
    )
    assert again.how == "cached" and len(calls) == 2


def test_a_named_runtime_is_not_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = {name: _never(name) for name in (FLOAT32, BFLOAT16, LLAMA_CPP)}
    monkeypatch.setenv("SPECSTEER_CLOUD_RUNTIME", "transformers")

    def measure(*args: Any, **kw: Any) -> Any:
        raise AssertionError("not measured")

    store = RuntimeStore(tmp_path / "r.json")
    choice = choose_runtime("m", "cloud", table, store, cpu=AVX2, llama_cpp=True, measure=measure)
    assert (choice.runtime, choice.how) == (FLOAT32, "asked")
    assert not store.path.exists()


def test_progress_lines_reach_the_display(tmp_path: Path) -> None:
    clock = FakeClock()
    table, _ = loaders(clock, {FLOAT32: COSTS[FLOAT32], LLAMA_CPP: COSTS[LLAMA_CPP]}, {})
    lines: list[str] = []
    with reporting(lines.append):
        choose_runtime(
            "tiny-model",
            "cloud",
            table,
            RuntimeStore(tmp_path / "r.json"),
            cpu=AVX2,
            llama_cpp=True,
            measure=functools.partial(calibrate, clock=clock, probe=tiny_probe),
        )
    assert lines[0].startswith("calibrating the runtimes of tiny-model on AMD EPYC 7B13 (avx2")
    assert "measuring runtime 2/2: llama.cpp" in " ".join(lines)
    assert lines[-1] == "tiny-model runs on llama.cpp here"


def test_the_probe_is_a_real_chat_in_the_models_tokens() -> None:
    backend = tiny_backend(0)
    probe = probe_chat(backend)
    prompt_end = probe.answer_from + 1
    assert backend.decode(list(probe.ids[:prompt_end]), skip_special_tokens=False).count("<|") >= 2
    assert len(probe.ids) - prompt_end >= probe.draft + 1


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse avx2 fma f16c", False),
        ("fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),
        ("fpu avx2 avx512f amx_tile amx_bf16 amx_int8", True),
        ("fpu avx2 avx512f avx512_vnni", False),  # AVX-512 without BF16: emulated
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(
    tmp_path: Path, flags: str, native: bool
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
    )
    cpu = this_cpu(info)
    assert cpu.model == "Some CPU" and cpu.native_bfloat16 is native
    assert cpu.key != this_cpu(tmp_path / "missing").key
