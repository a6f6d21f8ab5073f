"""Every example runs (with tiny models where the real ones would be slow)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from specsteer.testing import tiny_backend

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_example_is_covered() -> None:
    covered = {
        "personal_assistant",
        "own_models",
        "audit_egress",
        "reference_server",
        "vllm_cloud",
        "stream_events",
    }
    assert {p.stem for p in EXAMPLES.glob("*.py")} == covered


def test_personal_assistant(capsys: pytest.CaptureFixture[str]) -> None:
    text = load("personal_assistant").main(tiny_backend(0), tiny_backend(1))
    out = capsys.readouterr().out
    assert text in out and "tokens/s" in out and "sent" in out


def test_stream_events(capsys: pytest.CaptureFixture[str]) -> None:
    marked = load("stream_events").main(tiny_backend(0), tiny_backend(1))
    out = capsys.readouterr().out
    assert marked and out.startswith(marked) and "rounds" in out and "bytes sent" in out
    assert "[" in marked or "{" in marked  # pieces the cloud accepted or the device recovered


def test_own_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, seed in (("device", 0), ("cloud", 1)):
        backend = tiny_backend(seed)
        backend.model.save_pretrained(tmp_path / name)
        backend.tokenizer.save_pretrained(tmp_path / name)
    text = load("own_models").main(str(tmp_path / "device"), str(tmp_path / "cloud"))
    out = capsys.readouterr().out
    assert text and out.startswith(text + "\n") and "acceptance_rate" in out


def test_audit_egress(capsys: pytest.CaptureFixture[str]) -> None:
    assert load("audit_egress").main(tiny_backend(0), tiny_backend(1)) is True
    out = capsys.readouterr().out
    assert "payloads" in out and "EMAIL_ADDRESS" in out and "ok" in out.lower()


def test_reference_server(capsys: pytest.CaptureFixture[str]) -> None:
    text = load("reference_server").main(tiny_backend(0), tiny_backend(1))
    out = capsys.readouterr().out
    assert text in out and "fallback=None" in out and "cloud calls over HTTP" in out


def test_vllm_cloud(capsys: pytest.CaptureFixture[str]) -> None:
    """The reference server's completions endpoint stands in for vLLM."""
    import secrets

    from specsteer.cloud_adapter import BackgroundServer, VerifierCore, create_app

    device, cloud_model = tiny_backend(0), tiny_backend(1)
    token = secrets.token_urlsafe(16)
    server = BackgroundServer(create_app(VerifierCore(cloud_model), token=token)).start()
    try:
        text = load("vllm_cloud").main(server.url, cloud_model.name, device, token)
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert text in out and "fallback=None" in out
