"""Which runtime the embedded device model uses: the call's choice, else the environment's, else
llama.cpp when it is installed; a bad name or a missing package is a clear, typed error."""

from __future__ import annotations

import sys

import pytest

from specsteer import ConfigurationError, device_runtime
from specsteer._errors import MissingDependencyError
from specsteer._models import DEVICE_RUNTIME_ENV


@pytest.fixture
def no_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now raises ImportError


def test_transformers_is_always_there(monkeypatch: pytest.MonkeyPatch, no_llama_cpp: None) -> None:
    assert device_runtime("transformers") == "transformers"
    monkeypatch.setenv(DEVICE_RUNTIME_ENV, "Transformers")
    assert device_runtime() == "transformers"


def test_auto_falls_back_without_llama_cpp(
    monkeypatch: pytest.MonkeyPatch, no_llama_cpp: None
) -> None:
    monkeypatch.delenv(DEVICE_RUNTIME_ENV, raising=False)
    assert device_runtime() == "transformers"
    assert device_runtime("auto") == "transformers"


def test_asking_for_llama_cpp_without_it_names_the_install(no_llama_cpp: None) -> None:
    with pytest.raises(MissingDependencyError, match=r"specsteer\[llamacpp\]"):
        device_runtime("llama.cpp")


def test_auto_takes_llama_cpp_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    monkeypatch.delenv(DEVICE_RUNTIME_ENV, raising=False)
    assert device_runtime() == "llama.cpp"
    monkeypatch.setenv(DEVICE_RUNTIME_ENV, "transformers")
    assert device_runtime() == "transformers"


def test_unknown_runtime_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"choose auto, llama\.cpp or transformers"):
        device_runtime("onnx")
    monkeypatch.setenv(DEVICE_RUNTIME_ENV, "cuda")
    with pytest.raises(ConfigurationError, match=DEVICE_RUNTIME_ENV):
        device_runtime()
