"""The README and the docs describe the code as it is: their examples run, their payloads validate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specsteer.cloud_adapter import VerifyRequest, VerifyResponse, check_response

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(path: Path, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(path.read_text()) if kind == lang]


def test_protocol_examples_are_valid_payloads() -> None:
    payloads = [json.loads(b) for b in blocks(ROOT / "docs" / "protocol.md", "json")]
    requests = [VerifyRequest.model_validate(p) for p in payloads if "prompt" in p]
    responses = [VerifyResponse.model_validate(p) for p in payloads if "n_accepted" in p]
    assert len(requests) == len(responses) == 3
    kinds = set()
    for req, resp in zip(requests, responses, strict=True):
        check_response(req, resp)
        kinds.add((req.draft.kind, req.params.verdict))
    assert kinds == {("ids", "cloud"), ("ids", "device"), ("text", "cloud")}


def test_readme_tiny_example_runs() -> None:
    """The README's tiny-model block (the real-model quick start runs in the integration test)."""
    code = [b for b in blocks(ROOT / "README.md", "python") if "tiny_backend" in b]
    assert code
    for block in code:
        exec(compile(block, "README.md", "exec"), {})


@pytest.mark.integration
def test_readme_quick_start_runs(
    real_model_cache: Path, specsteer_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specsteer_home.mkdir(parents=True, exist_ok=True)
    (specsteer_home / "models").symlink_to(real_model_cache, target_is_directory=True)
    quick = [b for b in blocks(ROOT / "README.md", "python") if "default_assistant" in b]
    assert len(quick) == 1
    exec(compile(quick[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "tokens/s" in out and "payloads" in out
    assert "Lena" in out  # the memory steered the answer; the cloud never saw it
