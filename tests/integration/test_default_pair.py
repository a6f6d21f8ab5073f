"""The embedded default pair end to end: SmolLM2 on the device, Gemma 3 270M as the cloud model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specsteer import default_assistant
from specsteer._cli import app

pytestmark = pytest.mark.integration


@pytest.fixture
def home_with_models(real_model_cache: Path, specsteer_home: Path) -> Path:
    specsteer_home.mkdir(parents=True, exist_ok=True)
    (specsteer_home / "models").symlink_to(real_model_cache, target_is_directory=True)
    return specsteer_home


def test_default_pair_runs_in_text_mode(home_with_models: Path) -> None:
    assistant = default_assistant(progress=False)
    assert assistant.decoder.wire == "text"
    result = assistant.generate(
        "Write a short birthday message for my sister.",
        context="My sister Lena's birthday is on March 14.",
        max_new_tokens=32,
    )
    s = result.stats
    assert s.fallback is None and s.cloud_calls > 0 and s.new_tokens > 0
    assert 0 < s.acceptance_rate <= 1 and result.text
    assert result.privacy is not None and result.privacy.payloads == s.cloud_calls


def test_cli_generate_with_a_users_memories(home_with_models: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["memory", "add", "--user", "maya", "My sister is called Lena."])
    assert added.exit_code == 0, added.output
    out = runner.invoke(
        app,
        [
            "generate",
            "Write one line to my sister.",
            "--user",
            "maya",
            "--json",
            "--max-new-tokens",
            "16",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)  # stdout holds the JSON object alone
    assert doc["text"] and doc["stats"]["method"] == "specsteer"
    assert doc["privacy"]["payloads"] == doc["stats"]["cloud_calls"] > 0
