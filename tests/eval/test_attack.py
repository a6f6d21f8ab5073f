"""The attack on what left: its scorers find a planted leak, sit at chance on nothing, read the
payloads the audit log holds, and measure a canary's exposure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from specsteer._attack import (
    CANARY_SPACE,
    ModelAttacker,
    accuracy,
    attack_trials,
    candidates_for,
    exposure,
    observed_text,
    wilson,
)
from specsteer._attack_run import canary_examples, run_attack
from specsteer._eval import EvalExample, load_examples
from specsteer.backends import ModelBackend
from specsteer.cloud_adapter import TokenIds, VerifyParams, VerifyRequest
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import Keyring
from specsteer.testing import tiny_backend

SHIPPED = load_examples()


class Copier(ModelBackend):
    """A word-level model that predicts each word in proportion to how often it appeared before
    (a copying head): what left raises the likelihood of the candidates it holds."""

    name = "copier"

    def __init__(self, words: Sequence[str]) -> None:
        self.words = ["<end>", *dict.fromkeys(w.lower() for w in words)]

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({0})

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        seen = [*(cache or []), *ids]
        base = len(cache or [])
        rows = [
            torch.bincount(torch.tensor(seen[: base + i + 1]), minlength=self.vocab_size)
            for i in range(len(ids))
        ]
        return torch.stack([r.float() * 2.0 for r in rows]), seen

    def crop(self, cache: Any, length: int) -> Any | None:
        return list(cache)[:length]

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> list[int]:
        return self.encode(" ".join(m["content"] for m in messages))

    def encode(self, text: str) -> list[int]:
        words = re.findall(r"\w+", text.lower())
        return [self.words.index(w) for w in words if w in self.words]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return " ".join(self.words[i] for i in ids)


def _copier() -> Copier:
    words = [w for e in SHIPPED for f in e.facts for w in re.findall(r"\w+", f)]
    words += re.findall(
        r"\w+",
        "a request from user the text an assistant wrote for it and fact "
        "about request text happy birthday is in hope you well",
    )
    words += [*CANARY_SPACE.first, *CANARY_SPACE.second]
    return Copier(words)


def _birthday() -> EvalExample:
    return next(e for e in SHIPPED if e.id.endswith("-birthday"))


def test_candidates_are_the_fact_and_distractors_of_the_same_kind() -> None:
    example = _birthday()
    for index, fact in enumerate(example.facts):
        cands = candidates_for(example, index, SHIPPED, 8)
        assert fact in cands and len(cands) == len({c.casefold() for c in cands})
        same_kind = {e.facts[index] for e in SHIPPED if e.id.endswith("-birthday")}
        assert set(cands) <= same_kind
        assert cands == candidates_for(example, index, SHIPPED, 8)  # reproducible


@pytest.mark.parametrize("attacker", ["string", "model"])
def test_a_planted_leak_is_ranked_first(attacker: str) -> None:
    model = ModelAttacker(_copier())
    for example in [e for e in SHIPPED if e.facts][:20]:
        leak = f"Happy birthday! I hope {example.facts[0]} is treating you well."
        record = {"method": "specsteer@0.1", "id": example.id}
        trial = attack_trials(record, example, leak, SHIPPED, n=8, attacker=model)[0]
        pick = trial.string_pick if attacker == "string" else trial.model_pick
        assert pick == example.facts[0], (example.id, trial.candidates)


@pytest.mark.parametrize("text", ["", "Happy birthday! I hope you are well."])
def test_with_no_signal_both_attackers_are_at_chance(text: str) -> None:
    model = ModelAttacker(_copier())
    trials = []
    for seed in range(12):
        for example in [e for e in SHIPPED if e.facts]:
            record = {"method": f"run{seed}", "id": example.id}
            trials += attack_trials(record, example, text, SHIPPED, n=8, attacker=model)
    for who in ("string", "model"):
        got = accuracy(trials, who)
        assert got["n"] > 2000
        assert got["low"] <= got["chance"] <= got["high"], (who, got)


def test_wilson_interval_holds_the_proportion() -> None:
    low, high = wilson(30, 100)
    assert low < 0.3 < high and low > 0.2 and high < 0.41
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_the_text_that_left_is_read_from_the_payloads() -> None:
    device = tiny_backend(0)

    def payload(prefix: str, draft: str) -> bytes:
        request = VerifyRequest(
            request_id="abcdefghijklmnop",
            model="m",
            prompt=[{"role": "user", "content": "plan my friday"}],  # type: ignore[list-item]
            prefix=TokenIds(ids=device.encode(prefix)),
            draft=TokenIds(ids=device.encode(draft)),
            params=VerifyParams(),
        )
        return request.model_dump_json().encode()

    sent = [
        payload("", "dinner in rome"),
        payload("dinner in", "paris with my"),
        payload("dinner in paris", "sister"),
    ]
    text = observed_text(sent, device.decode)
    assert text.startswith("dinner in paris sister")
    assert "rome" in text  # a draft the cloud rejected was still read
    assert observed_text([b'{"prompt": [], "max_new_tokens": 8}'], device.decode) == ""


def test_a_leaked_canary_is_exposed_and_an_unseen_one_is_not() -> None:
    model = ModelAttacker(_copier())
    secret = "amber-falcon"
    leaked = exposure(
        model, CANARY_SPACE.request, f"Your wifi password is {secret}.", secret, CANARY_SPACE
    )
    hidden = exposure(model, CANARY_SPACE.request, "", secret, CANARY_SPACE)
    assert leaked["leaked_verbatim"] and leaked["exposure"] > 6.0
    assert not hidden["leaked_verbatim"] and hidden["exposure"] == pytest.approx(1.0, abs=0.1)


def test_canary_tasks_plant_one_secret_each() -> None:
    tasks = canary_examples(SHIPPED, 3)
    assert len({t.user_id for t in tasks}) == 3
    for t in tasks:
        (secret,) = t.facts
        assert any(secret in item for item in t.profile) and secret not in t.input


def _tiny_memory(root: Path) -> MemoryStore:
    return MemoryStore(root / "memory", embedder=HashEmbedder(), keyring=Keyring(root / "keys"))


def test_run_attack_reads_each_answers_payloads_from_the_audit_log(tmp_path: Path) -> None:
    report = run_attack(
        SHIPPED,
        device=tiny_backend(0),
        cloud=tiny_backend(1),
        attacker_model=_copier(),
        out_dir=tmp_path,
        methods=["cloud_only", "device_only", "specsteer"],
        lams=[0.1],
        taus=[1.0],
        candidates=4,
        canaries=1,
        limit=3,
        max_new_tokens=12,
        memory_factory=_tiny_memory,
        progress=False,
    )
    rows = {r["method"]: r for r in report["methods"]}
    assert set(rows) == {"cloud_only", "device_only", "specsteer@0.1", "specsteer@0.1/tau1"}
    assert rows["specsteer@0.1/tau1"]["lift_kept_tokens"] > 0
    saved = json.loads((tmp_path / "attack.json").read_text())
    assert len(saved["trials"]) == 4 * sum(len(e.facts) for e in SHIPPED[:3])
    assert "| specsteer@0.1/tau1 |" in (tmp_path / "attack.md").read_text()
    assert {r["method"] for r in report["canaries"]} == set(rows)
    assert (tmp_path / "attack.png").stat().st_size > 0
