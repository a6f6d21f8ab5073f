"""The embedded pairs end to end: Qwen2.5-Coder-0.5B (default) or SmolLM2 on the device,
Qwen2.5-Coder-1.5B as the cloud model."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from specsteer import DEFAULT_CONFIG, Assistant, default_assistant
from specsteer._cli import app
from specsteer.backends import KVStream, ModelBackend
from specsteer.cloud_adapter import InProcessVerifier

pytestmark = pytest.mark.integration


@pytest.fixture
def home_with_models(real_model_cache: Path, specsteer_home: Path) -> Path:
    specsteer_home.mkdir(parents=True, exist_ok=True)
    (specsteer_home / "models").symlink_to(real_model_cache, target_is_directory=True)
    return specsteer_home


@pytest.mark.parametrize(
    ("pair", "wire"), [("qwen0.5b-qwen1.5b", "ids"), ("smollm2-qwen1.5b", "text")]
)
def test_each_pair_runs_in_its_wire_mode(home_with_models: Path, pair: str, wire: str) -> None:
    assistant = default_assistant(progress=False, pair=pair)
    assert assistant.decoder.wire == wire
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
            # The context-lift policy may keep a short answer about a remembered name wholly on
            # the device (no cloud call); this test is about the round trip through the CLI.
            "--max-context-lift",
            "inf",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)  # stdout holds the JSON object alone
    assert doc["text"] and doc["stats"]["method"] == "specsteer"
    assert doc["privacy"]["payloads"] == doc["stats"]["cloud_calls"] > 0


def test_eval_on_five_examples_of_the_shipped_set(home_with_models: Path, tmp_path: Path) -> None:
    """`specsteer eval` on the default pair: the memory reaches SpecSteer's answers, not the
    cloud's, and no answer echoes the prompt."""
    out = tmp_path / "eval"
    methods = "device_only,cloud_only,specsteer"
    args = ["eval", "--limit", "5", "--methods", methods, "--lam", "0.1", "--out", str(out)]
    done = CliRunner().invoke(app, [*args, "--max-new-tokens", "40"])
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 15 and all(r["text"] and not r["echo"] for r in records)

    def recall(method: str) -> float:
        got = [r["fact_recall"] for r in records if r["method"] == method]
        return sum(got) / len(got)

    assert recall("specsteer@0.1") > recall("cloud_only")
    assert "paired" in (out / "summary.md").read_text().lower()


#: A placeholder the guard writes into what the cloud sees: ``[PRIVATE_TOKEN_1]``, ``[PERSON_2]``.
PLACEHOLDER = re.compile(r"\[[A-Z]+(?:_[A-Z]+)*_\d+\]")

PRIVATE_NOTES = (
    "My locker code at the gym is QX7-4419-ZK and my IBAN is NL91ABNA0417164300.",
    "My sister Lena Okafor lives at 14 Harbour Lane, Lisbon; her birthday is on March 14.",
)


class Recording(KVStream):
    """A device KV stream that records every sequence it is asked about."""

    def __init__(self, backend: ModelBackend) -> None:
        super().__init__(backend)
        self.seen: list[list[int]] = []

    def logits(self, context: Sequence[int], block: Sequence[int] = ()) -> torch.Tensor:
        self.seen.append([*context, *block])
        return super().logits(context, block)


@pytest.mark.parametrize(
    "method", ["specsteer", "speculative", "token_fusion", "device_only", "cloud_only"]
)
def test_no_placeholder_reaches_an_answer_or_a_drafter(
    qwen_pair: tuple[ModelBackend, ModelBackend], method: str
) -> None:
    """With the guard on and private identifiers in the context, whatever the method: the answer
    holds no placeholder, and none is ever fed to the model that drafts."""
    device, cloud = qwen_pair
    assistant = Assistant(device, InProcessVerifier(cloud), config=DEFAULT_CONFIG)
    # The drafter: the private stream, or for standard speculative decoding the public one.
    # (SpecSteer's context-free scores are read on the cloud's view, placeholders included, as
    # the cloud reads P_L: that stream drafts nothing.)
    drafter = Recording(device)
    if method == "speculative":
        assistant.decoder._public = drafter
    else:
        assistant.decoder._private = drafter
    result = assistant.generate(
        "Write a note to myself with my locker code and my sister's address.",
        context="\n".join(f"- {note}" for note in PRIVATE_NOTES),
        max_new_tokens=40,
        method=method,
    )
    assert result.text and not PLACEHOLDER.search(result.text)
    assert drafter.seen or method == "cloud_only"
    for ids in drafter.seen:
        assert not PLACEHOLDER.search(device.decode(ids, skip_special_tokens=False))
    assert result.privacy is not None


def _payload_texts(log_path: Path, device: ModelBackend) -> list[str]:
    """What the cloud read in each payload the audit log holds (prefix and draft, as text)."""
    from specsteer._attack import observed_text
    from specsteer.privacy import AuditLog

    log = AuditLog(log_path)
    bodies = [log.read_payload(r) for r in log.records()]
    return [observed_text([b], device.decode) for b in bodies if b is not None]


def test_the_context_lift_policy_keeps_a_private_fact_out_of_every_payload(
    qwen_pair: tuple[ModelBackend, ModelBackend], tmp_path: Path
) -> None:
    """Ordinary words the guard has no reason to stop ("Rose", "jazz": dictionary words, no
    identifier) leave in SpecSteer's drafts; at tau = 4 nats they stay on the device."""
    from specsteer import PrivateEgress
    from specsteer.privacy import AuditLog, EgressPolicy

    device, cloud = qwen_pair
    leaked = {}
    for tau in (None, 4.0):
        path = tmp_path / f"audit-{tau}.jsonl"
        egress = PrivateEgress(policy=EgressPolicy(max_context_lift=tau), audit_log=AuditLog(path))
        assistant = Assistant(
            device, InProcessVerifier(cloud), config=DEFAULT_CONFIG, privacy=egress
        )
        result = assistant.generate(
            "Write a short birthday message for my sister.",
            context="- My sister Rose lives in Dublin and loves jazz.",
            max_new_tokens=48,
        )
        seen = " ".join(_payload_texts(path, device)).casefold()
        leaked[tau] = {w for w in ("rose", "dublin", "jazz") if re.search(rf"\b{w}\b", seen)}
        assert result.privacy is not None
        if tau is not None:
            assert result.privacy.tokens_kept_for_lift > 0
            assert result.privacy.max_context_lift_sent <= tau
    assert leaked[None], "without the policy the drafts carry the facts"
    assert leaked[4.0] == set()


def test_the_cloud_model_as_attacker_finds_a_planted_fact(
    qwen_pair: tuple[ModelBackend, ModelBackend],
) -> None:
    from specsteer._attack import ModelAttacker, candidates_for
    from specsteer._eval import load_examples

    _, cloud = qwen_pair
    attacker = ModelAttacker(cloud)
    examples = [e for e in load_examples() if e.facts]
    for example in examples[:4]:
        cands = candidates_for(example, 0, examples, 8)
        text = f"Dear friend, a quick note: {example.facts[0]} is on my mind today."
        scores = attacker.scores(example.input, text, cands)
        assert cands[max(range(len(cands)), key=scores.__getitem__)] == example.facts[0]
