"""The command line of the gateway, of `chat --remember`, and of the gateway's benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from specsteer._cli import app

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_chat_remember_shows_what_it_stored_and_stores_it() -> None:
    result = runner.invoke(
        app,
        ["chat", "--tiny", "--remember", "--user", "maya", "--max-new-tokens", "4"],
        input="i am in rome . what is the plan ?\nwhat is the plan ?\nexit\n",
    )
    assert result.exit_code == 0, result.output
    assert flat(result.output).count("remembered: I am in rome .") == 1

    from specsteer.apps._assistants import open_memory

    assert open_memory(tiny=True).all_texts("maya") == ["I am in rome ."]


def test_chat_without_remember_stores_nothing() -> None:
    result = runner.invoke(
        app,
        ["chat", "--tiny", "--user", "maya", "--max-new-tokens", "4"],
        input="i am in rome .\nexit\n",
    )
    assert result.exit_code == 0 and "remembered" not in result.output

    from specsteer.apps._assistants import open_memory

    assert open_memory(tiny=True).all_texts("maya") == []


def test_a_remember_ttl_needs_remember() -> None:
    result = runner.invoke(app, ["chat", "--tiny", "--remember-ttl", "60"])
    assert result.exit_code == 2 and "--remember-ttl needs --remember" in flat(result.output)


def test_the_gateway_refuses_a_public_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPECSTEER_GATEWAY_TOKEN", raising=False)
    result = runner.invoke(app, ["gateway", "--tiny", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "without a bearer token" in flat(result.output)
    assert "SPECSTEER_GATEWAY_TOKEN" in flat(result.output)


def test_the_token_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from specsteer import ConfigurationError
    from specsteer.apps.gateway import gateway_token

    monkeypatch.setenv("SPECSTEER_GATEWAY_TOKEN", "from-env")
    assert gateway_token() == "from-env"
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert gateway_token(path) == "from-file"
    path.write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        gateway_token(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        gateway_token(tmp_path / "missing")


def test_the_gateway_help_names_its_options() -> None:
    result = runner.invoke(app, ["gateway", "--help"])
    assert result.exit_code == 0
    out = flat(result.output)
    assert "OpenAI's Chat Completions API" in out
    for option in ("--remember", "--remember-ttl", "--token-file", "--user", "--cloud", "--tiny"):
        assert option in out


def test_bench_gateway_writes_the_overhead_table(tmp_path: Path) -> None:
    out = tmp_path / "gateway.md"
    result = runner.invoke(
        app, ["bench", "--gateway", "--tiny", "--quick", "--max-new-tokens", "6", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = out.read_text()
    assert doc.startswith("# Gateway overhead\n")
    rows = [line for line in doc.splitlines() if line.startswith("| gateway")]
    assert len(rows) == 2 and all("%" in row for row in rows)
    assert "| in process (`Assistant.generate`) |" in doc and "100.0%" in doc
    assert "6 tokens" in doc
