"""The code in docs/cloud.md runs, its JSON examples validate, its command line exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from specsteer.cloud_adapter import VerifyRequest, VerifyResponse

pytestmark = pytest.mark.timeout(120)

DOC = Path(__file__).resolve().parents[2] / "docs" / "cloud.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_cloud_doc_python_blocks_run() -> None:
    code = blocks("python")
    assert len(code) >= 5
    namespace: dict[str, object] = {"__name__": "cloud_doc"}
    try:
        for i, block in enumerate(code):
            exec(compile(block, f"{DOC.name}:block{i + 1}", "exec"), namespace)
    finally:
        server = namespace.get("server")
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def test_cloud_doc_json_examples_are_valid_protocol() -> None:
    request, response = blocks("json")
    req = VerifyRequest.model_validate_json(request)
    resp = VerifyResponse.model_validate_json(response)
    assert req.n_draft == len(req.ctxfree_logprobs or []) == 4
    assert resp.n_accepted <= req.n_draft


def test_cloud_doc_command_line_options_exist() -> None:
    shell = "\n".join(blocks("bash"))
    out = subprocess.run(
        [sys.executable, "-m", "specsteer.cloud_adapter.server_main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for flag in re.findall(r"server_main ((?:--[\w-]+[^\n]*))", shell):
        for option in re.findall(r"--[\w-]+", flag):
            assert option in out, option
    assert "--slm" in shell and "--slm" in out
