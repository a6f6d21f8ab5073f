"""docs/gateway.md describes the gateway as it is: its code runs, its options exist."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specsteer._cli import app

from .conftest import Gateway

pytestmark = pytest.mark.timeout(180)

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
README = DOC.parents[1] / "README.md"
DOC_URL = "http://127.0.0.1:8080/v1"


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.DOTALL)


def run(code: str, gateway: Gateway, where: str) -> None:
    """Run a documented client against the test gateway (the doc's URL swapped for its own)."""
    assert DOC_URL in code
    exec(compile(code.replace(DOC_URL, gateway.url + "/v1"), where, "exec"), {})


@pytest.mark.parametrize("library", ["from openai", "from langchain_openai"])
def test_the_client_examples_run_against_the_gateway(
    make_gateway: Callable[..., Gateway], library: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = make_gateway()
    code = [b for b in blocks(DOC, "python") if b.startswith(library)]
    assert len(code) == 1
    run(code[0], gateway, f"{DOC.name}: {library}")
    assert capsys.readouterr().out.strip()  # it printed the answer
    assert gateway.device.prompts  # the gateway answered it


def test_the_readme_client_example_runs_against_the_gateway(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    code = [b for b in blocks(README, "python") if "from openai import OpenAI" in b]
    assert len(code) == 1
    run(code[0], gateway, "README.md: openai")
    assert capsys.readouterr().out.strip()


def test_the_async_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = [b for b in blocks(DOC, "python") if "asyncio.run" in b]
    assert len(code) == 1
    exec(compile(code[0], f"{DOC.name}: async", "exec"), {})
    out = capsys.readouterr().out
    assert "remembered: ('I am in rome .',)" in out and "8 tokens for bob" in out


def test_the_documented_options_exist() -> None:
    shell = "\n".join(blocks(DOC, "bash") + blocks(README, "bash"))
    used = set(re.findall(r"specsteer gateway[^\n#]*", shell))
    assert used
    out = CliRunner().invoke(app, ["gateway", "--help"]).output
    for line in used:
        for option in re.findall(r"--[\w-]+", line):
            assert option in out, option


def test_the_documented_settings_are_the_gateways() -> None:
    from specsteer.apps.gateway import KNOBS

    text = " ".join(DOC.read_text().split())
    for name in KNOBS:
        assert f"`{name}`" in text, name


def test_the_documented_specsteer_object_has_the_gateways_keys(gateway: Gateway) -> None:
    import json

    (documented,) = [json.loads(b) for b in blocks(DOC, "json")]
    reply = gateway.client().chat.completions.create(
        model="specsteer", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert list(documented) == list(reply.specsteer)  # type: ignore[attr-defined]
    table = DOC.read_text().split("| key | what |")[1].split("\n\n")[0]
    for key in documented:
        assert f"`{key}`" in table, key
