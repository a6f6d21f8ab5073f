"""Test-wide guards: all state under a per-test SPECSTEER_HOME; no network but loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_LOOPBACK = ("127.", "::1", "localhost")
_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not host.startswith(_LOOPBACK) and self.family != socket.AF_UNIX:
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Test workers (make test runs two) share the machine's cores: each takes its share, and the
    # llama.cpp backend follows torch's thread count.
    import torch

    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True)
def specsteer_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own empty state root."""
    home = tmp_path / "specsteer_home"
    monkeypatch.setenv("SPECSTEER_HOME", str(home))
    yield home


def _test_runtime() -> str:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # not installed, or its library does not load
        return "transformers"
    return "llama.cpp"


#: The runtime the real models run on in the tests, unless the environment names one: measuring
#: the runtimes (what a user's first load does) would take minutes in every fresh state root;
#: the calibration itself is tested with fakes (tests/engine/test_calibrate.py).
TEST_RUNTIME = _test_runtime()


@pytest.fixture(scope="session")
def test_runtimes() -> dict[str, str]:
    """The runtime of each side's real model in the tests (``device``, ``cloud``)."""
    return {
        "device": os.environ.get("SPECSTEER_DEVICE_RUNTIME") or TEST_RUNTIME,
        "cloud": os.environ.get("SPECSTEER_CLOUD_RUNTIME") or TEST_RUNTIME,
    }


@pytest.fixture(autouse=True)
def named_runtimes(monkeypatch: pytest.MonkeyPatch, test_runtimes: dict[str, str]) -> None:
    monkeypatch.setenv("SPECSTEER_DEVICE_RUNTIME", test_runtimes["device"])
    monkeypatch.setenv("SPECSTEER_CLOUD_RUNTIME", test_runtimes["cloud"])


#: Converted real models are cached here across test runs (the first run converts them once).
REAL_MODEL_CACHE = Path(
    os.environ.get(
        "SPECSTEER_TEST_MODEL_CACHE", Path(__file__).resolve().parent.parent / ".cache" / "models"
    )
)


@pytest.fixture(scope="session")
def real_model_cache() -> Path:
    """Where integration tests keep the bundled models' converted weights."""
    REAL_MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return REAL_MODEL_CACHE
