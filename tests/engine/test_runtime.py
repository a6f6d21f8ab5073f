"""Which runtime an embedded model runs on: the call's choice, else the environment's, else the
one calibrated on this machine; a bad name or a missing package is a clear, typed error."""

from __future__ import annotations

import sys

import pytest

from specsteer import ConfigurationError
from specsteer._errors import MissingDependencyError
from specsteer._runtimes import (
    CLOUD_RUNTIME_ENV,
    DEVICE_RUNTIME_ENV,
    Cpu,
    requested_runtime,
)

AVX2 = Cpu("AMD EPYC", frozenset({"avx2", "fma", "f16c"}))
AVX512_BF16 = Cpu("AMD EPYC", frozenset({"avx2", "avx512f", "avx512_bf16"}))


@pytest.fixture
def no_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now raises ImportError


@pytest.fixture(autouse=True)
def no_runtime_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_RUNTIME_ENV, raising=False)
    monkeypatch.delenv(CLOUD_RUNTIME_ENV, raising=False)


def test_without_a_choice_the_runtime_is_measured() -> None:
    assert requested_runtime("device", cpu=AVX2) == "auto"
    assert requested_runtime("cloud", "Auto", cpu=AVX2) == "auto"


def test_transformers_means_bfloat16_only_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert requested_runtime("device", "transformers", cpu=AVX2) == "transformers-float32"
    assert requested_runtime("device", "transformers", cpu=AVX512_BF16) == "transformers-bfloat16"
    monkeypatch.setenv(DEVICE_RUNTIME_ENV, "Transformers")
    assert requested_runtime("device", cpu=AVX2) == "transformers-float32"


def test_each_role_reads_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOUD_RUNTIME_ENV, "transformers-bfloat16")
    assert requested_runtime("cloud", cpu=AVX2) == "transformers-bfloat16"
    assert requested_runtime("device", cpu=AVX2) == "auto"
    # The call's choice comes before the environment's.
    assert requested_runtime("cloud", "transformers-float32", cpu=AVX2) == "transformers-float32"


def test_asking_for_llama_cpp_without_it_names_the_install(no_llama_cpp: None) -> None:
    with pytest.raises(MissingDependencyError, match=r"specsteer\[llamacpp\]"):
        requested_runtime("cloud", "llama.cpp", cpu=AVX2)


def test_llama_cpp_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    monkeypatch.setenv(DEVICE_RUNTIME_ENV, "llama.cpp")
    assert requested_runtime("device", cpu=AVX2) == "llama.cpp"


def test_unknown_runtime_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"choose auto, transformers or one of: llama"):
        requested_runtime("device", "onnx", cpu=AVX2)
    monkeypatch.setenv(CLOUD_RUNTIME_ENV, "cuda")
    with pytest.raises(ConfigurationError, match=CLOUD_RUNTIME_ENV):
        requested_runtime("cloud", cpu=AVX2)
