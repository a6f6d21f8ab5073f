"""Which runtime computes an embedded model: chosen by measurement on this machine, once.

The candidates are llama.cpp (when llama-cpp-python is installed), float32 transformers, and
bfloat16 transformers only where the CPU computes bfloat16 natively (``avx512_bf16`` or
``amx_bf16`` among its flags: elsewhere bfloat16 is emulated and several times slower). On first
load each candidate is timed and compared with float32 (:mod:`specsteer._calibrate`); the fastest
that agrees is kept in ``runtimes.json`` beside the converted weights, keyed by the model, the
CPU's identity (its model name and flags), the thread count and the runtimes' versions, so a
change of any of them measures again.

``SPECSTEER_DEVICE_RUNTIME`` and ``SPECSTEER_CLOUD_RUNTIME`` (or a loader's ``runtime=``) name a
runtime instead: ``auto`` (measure), ``llama.cpp``, ``transformers`` (bfloat16 where native,
else float32), ``transformers-float32`` or ``transformers-bfloat16``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Literal

import torch

from specsteer._calibrate import (
    AGREEMENT,
    AgreementBound,
    RuntimeTiming,
    calibrate,
    fastest_agreeing,
)
from specsteer._errors import ConfigurationError, MissingDependencyError
from specsteer.backends._base import ModelBackend

__all__ = [
    "CLOUD_RUNTIME_ENV",
    "DEVICE_RUNTIME_ENV",
    "RUNTIMES",
    "Cpu",
    "Role",
    "RuntimeChoice",
    "RuntimeStore",
    "choose_runtime",
    "llama_cpp_available",
    "reporting",
    "requested_runtime",
    "this_cpu",
]

logger = logging.getLogger(__name__)

LLAMA_CPP = "llama.cpp"
FLOAT32 = "transformers-float32"
BFLOAT16 = "transformers-bfloat16"
#: Every runtime a model can be computed by, in the order ties are broken.
RUNTIMES: tuple[str, ...] = (LLAMA_CPP, BFLOAT16, FLOAT32)

#: Where the embedded device model runs (``auto`` measures; see the module's docstring).
DEVICE_RUNTIME_ENV = "SPECSTEER_DEVICE_RUNTIME"
#: Where the embedded cloud model runs, in process and under ``specsteer serve``.
CLOUD_RUNTIME_ENV = "SPECSTEER_CLOUD_RUNTIME"
Role = Literal["device", "cloud"]
_ENV: dict[str, str] = {"device": DEVICE_RUNTIME_ENV, "cloud": CLOUD_RUNTIME_ENV}

#: CPU flags that decide which kernels a runtime gets; shown in reports.
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class Cpu:
    """This machine's CPU as the runtimes see it: its model name and flags."""

    model: str
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def native_bfloat16(self) -> bool:
        """Whether the CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX)."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def kernel_flags(self) -> list[str]:
        """The flags among :data:`KERNEL_FLAGS` this CPU has."""
        return [f for f in KERNEL_FLAGS if f in self.flags]

    def describe(self) -> str:
        """``AMD EPYC (avx2, fma, avx512f, ...)``, for captions."""
        return f"{self.model} ({', '.join(self.kernel_flags) or 'no AVX2'})"

    @property
    def key(self) -> str:
        """A digest of the model name and every flag."""
        text = self.model + "|" + " ".join(sorted(self.flags))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def this_cpu(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> Cpu:
    """The CPU of this machine, read from ``cpuinfo`` (Linux); elsewhere the platform's name and
    no flags (so bfloat16 is not assumed native)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return Cpu(platform.processor() or platform.machine())
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    model = fields.get("model name") or fields.get("Hardware") or platform.machine()
    return Cpu(model, frozenset((fields.get("flags") or fields.get("Features") or "").split()))


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python imports (installed, and its shared library loads)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # not installed, or its shared library does not load
        logger.info("llama-cpp-python is not available: %s", e)
        return False
    return True


def requested_runtime(role: Role, requested: str | None = None, cpu: Cpu | None = None) -> str:
    """The runtime asked for: ``requested``, else the role's environment variable, else
    ``auto``; ``transformers`` becomes bfloat16 where the CPU has it natively, else float32.

    Raises:
        ConfigurationError: an unknown runtime name.
        MissingDependencyError: llama.cpp was asked for and llama-cpp-python is not available.
    """
    env = _ENV[role]
    choice = (requested or os.environ.get(env) or "auto").strip().lower()
    if choice == "transformers":
        choice = BFLOAT16 if (cpu or this_cpu()).native_bfloat16 else FLOAT32
    if choice != "auto" and choice not in RUNTIMES:
        raise ConfigurationError(
            f"unknown {role} runtime {choice!r} (from {env} or the call); choose auto, "
            f"transformers or one of: {', '.join(RUNTIMES)}"
        )
    if choice == LLAMA_CPP and not llama_cpp_available():
        raise MissingDependencyError(
            "llama-cpp-python", "llamacpp", f"the llama.cpp {role} runtime"
        )
    return choice


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime a model runs on, and why.

    Attributes:
        model: the model's name.
        runtime: one of :data:`RUNTIMES`.
        how: ``"asked"`` (named by the call or the environment), ``"measured"`` (calibrated
            now) or ``"cached"`` (calibrated before on this machine).
        cpu: the CPU, described.
        timings: the calibration behind a measured or cached choice.
    """

    model: str
    runtime: str
    how: Literal["asked", "measured", "cached"]
    cpu: str = ""
    timings: tuple[RuntimeTiming, ...] = ()


class RuntimeStore:
    """The calibrations made on this machine: ``runtimes.json`` in the models folder.

    Args:
        path: the JSON file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, key: str) -> dict[str, object] | None:
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, object]) -> None:
        data = self._read()
        data[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.partial")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def calibration_key(model: str, cpu: Cpu, candidates: list[str]) -> str:
    """What a calibration depends on: model, CPU, threads, candidates and their versions."""
    versions = [f"torch {torch.__version__}"]
    if LLAMA_CPP in candidates:
        versions.append(f"llama-cpp-python {_version('llama-cpp-python')}")
    parts = [model, cpu.key, f"threads {torch.get_num_threads()}", *candidates, *versions]
    return " | ".join(parts)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def candidates(cpu: Cpu, llama_cpp: bool) -> list[str]:
    """The runtimes worth measuring here: float32 always, bfloat16 where native, llama.cpp
    when installed."""
    out = [FLOAT32]
    if cpu.native_bfloat16:
        out.append(BFLOAT16)
    if llama_cpp:
        out.append(LLAMA_CPP)
    return out


def choose_runtime(
    model: str,
    role: Role,
    loaders: Mapping[str, Callable[[], ModelBackend]],
    store: RuntimeStore,
    *,
    requested: str | None = None,
    cpu: Cpu | None = None,
    llama_cpp: bool | None = None,
    measure: Callable[..., list[RuntimeTiming]] = calibrate,
    bound: AgreementBound = AGREEMENT,
) -> RuntimeChoice:
    """The runtime ``model`` runs on: the one asked for, else the one calibrated on this machine
    before, else calibrate now (loading and timing each candidate: a minute or two, once).

    Args:
        model: the model's name (part of the cache key).
        role: ``"device"`` or ``"cloud"`` (which environment variable applies).
        loaders: runtime name -> loader, for every name in :data:`RUNTIMES`.
        store: where calibrations are kept.
        requested: a runtime name, as for :func:`requested_runtime`.
        cpu: this machine's CPU (default: read it).
        llama_cpp: whether llama.cpp is available (default: try the import).
        measure: the calibration (tests pass a fake).
        bound: how closely a runtime must agree with float32.
    """
    cpu = cpu or this_cpu()
    asked = requested_runtime(role, requested, cpu)
    if asked != "auto":
        return RuntimeChoice(model, asked, "asked", cpu.describe())
    names = candidates(cpu, llama_cpp_available() if llama_cpp is None else llama_cpp)
    key = calibration_key(model, cpu, names)
    cached = _cached(store.get(key), names)
    if cached is not None:
        return RuntimeChoice(model, cached[0], "cached", cpu.describe(), cached[1])
    logger.info("calibrating the runtimes of %s on %s (once)", model, cpu.describe())
    timings = measure({n: loaders[n] for n in names}, FLOAT32, report=_report(model))
    best = fastest_agreeing(timings, bound)
    runtime = best.runtime if best is not None else _fallback(names)
    store.put(
        key,
        {
            "model": model,
            "runtime": runtime,
            "cpu": cpu.describe(),
            "measured": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
            "timings": [t.to_json() for t in timings],
        },
    )
    logger.info("%s runs on %s here", model, runtime)
    return RuntimeChoice(model, runtime, "measured", cpu.describe(), tuple(timings))


def _cached(
    entry: dict[str, object] | None, names: list[str]
) -> tuple[str, tuple[RuntimeTiming, ...]] | None:
    """A stored choice among ``names`` with its timings, or ``None``."""
    if entry is None or entry.get("runtime") not in names:
        return None
    rows = entry.get("timings")
    try:
        timings = tuple(RuntimeTiming.from_json(t) for t in rows) if isinstance(rows, list) else ()
    except TypeError:  # written by another version: measure again
        return None
    return str(entry["runtime"]), timings


def _fallback(names: list[str]) -> str:
    """Nothing could be compared with float32: the runtime preferred before measuring."""
    logger.warning("no runtime could be checked against float32; using the first that loads")
    return next(n for n in RUNTIMES if n in names)


def _report(model: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        logger.info("calibrating %s: %s", model, line)

    return say


@contextmanager
def reporting(show: Callable[[str], None]) -> Iterator[None]:
    """Pass every calibration step to ``show`` (a progress line) while the block runs."""

    class _Show(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            show(record.getMessage())

    handler = _Show(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once, as progress, not again by the application's logging
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
