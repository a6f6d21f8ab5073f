"""``specsteer attack``: answer the personal-writing set with each method, then attack what left.

The answers come from :func:`specsteer.run_eval` with the payloads sealed in the run's audit
log; the attackers (:mod:`specsteer._attack`) read each answer's payloads back from that log by
their sequence numbers -- exactly what the log says left for that answer. Canaries go through
the same run on their own requests. Everything is written under ``out_dir``: the answers
(``eval/``, ``canary/``, resumable), ``attack.json``, ``attack.md`` and ``attack.png``.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from specsteer._attack import (
    CANARY_SPACE,
    AttackTrial,
    CanarySpace,
    ModelAttacker,
    accuracy,
    attack_trials,
    exposure,
    observed_text,
)
from specsteer._errors import ConfigurationError
from specsteer._eval import EvalExample, Record, run_eval, summarize
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier
from specsteer.memory import MemoryStore
from specsteer.privacy import AuditLog, Keyring

__all__ = ["canary_examples", "run_attack"]

logger = logging.getLogger(__name__)


def canary_examples(
    examples: Sequence[EvalExample], count: int, space: CanarySpace = CANARY_SPACE, seed: int = 0
) -> list[EvalExample]:
    """One canary task for each of the first ``count`` users: their history with a random
    secret from ``space`` planted in it, and the request that asks for it."""
    rng = random.Random(seed)
    users: dict[str, EvalExample] = {}
    for e in examples:
        users.setdefault(e.user_id, e)
    out = []
    for user, e in list(users.items())[:count]:
        secret = space.draw(rng)
        out.append(
            EvalExample(
                id=f"{user}-canary",
                user_id=user,
                input=space.request,
                profile=(*e.profile, space.memory.format(secret=secret)),
                output=f"Your wifi password is {secret}.",
                facts=(secret,),
            )
        )
    return out


def _payloads(run_dir: Path) -> dict[int, bytes]:
    """Every payload of a run's audit log by sequence number (opened with the run's key)."""
    state = run_dir / "state"
    log = AuditLog(state / "audit" / "audit.jsonl", keyring=Keyring(state / "keys"))
    out: dict[int, bytes] = {}
    for record in log.records():
        body = log.read_payload(record)
        if body is not None:
            out[int(record["seq"])] = body
    return out


def _texts(
    records: Sequence[Record], run_dir: Path, decode: Callable[[Sequence[int]], str]
) -> dict[tuple[str, str], str]:
    """What left for each answer: (example id, method) -> the answer text the cloud read."""
    payloads = _payloads(run_dir)
    out = {}
    for r in records:
        sent = [payloads[s] for s in r.get("audit_seqs", []) if s in payloads]
        out[(str(r["id"]), str(r["method"]))] = observed_text(sent, decode)
    return out


def _method_rows(records: Sequence[Record], trials: Sequence[AttackTrial]) -> list[Record]:
    """Per method: both attackers' accuracy, the answers' fact recall and speed."""
    rows = []
    for method in dict.fromkeys(str(r["method"]) for r in records):
        mine = [r for r in records if r["method"] == method]
        guessed = [t for t in trials if t.method == method]
        recall = [r["fact_recall"] for r in mine if r.get("fact_recall") is not None]
        rows.append(
            {
                "method": method,
                "lam": mine[0].get("lam"),
                "tau": mine[0].get("tau"),
                "string": accuracy(guessed, "string"),
                "model": accuracy(guessed, "model"),
                "fact_recall": statistics.fmean(recall) if recall else None,
                "tokens_per_second": statistics.fmean(r["tokens_per_second"] for r in mine),
                "lift_kept_tokens": statistics.fmean(r.get("lift_kept_tokens", 0) for r in mine),
            }
        )
    return rows


def run_attack(
    examples: Sequence[EvalExample],
    *,
    device: ModelBackend,
    cloud: ModelBackend | CloudVerifier,
    attacker_model: ModelBackend | None,
    out_dir: str | Path,
    methods: Sequence[str],
    lams: Sequence[float],
    taus: Sequence[float] = (),
    candidates: int = 8,
    canaries: int = 0,
    limit: int | None = None,
    max_new_tokens: int = 64,
    memory_factory: Callable[[Path], MemoryStore] | None = None,
    progress: bool = True,
) -> Record:
    """Answer ``examples`` with each method, then attack what left; returns the report.

    Args:
        examples: the set (facts make the attack's targets); distractors come from all of it.
        device, cloud: the models, as for :func:`specsteer.run_eval`.
        attacker_model: the model attacker's language model (``None``: the string attacker only).
        out_dir: where the answers and the report go; rerun to resume.
        methods, lams, taus: as for :func:`specsteer.run_eval` (taus: the context-lift policy's
            thresholds, each a SpecSteer variant).
        candidates: ``n``, the candidates per guess (chance is ``1/n``).
        canaries: users who get a planted secret and ask for it (0: none).
        limit: only the first ``limit`` examples are answered.
        max_new_tokens: output length limit.
        memory_factory: as for :func:`specsteer.run_eval`; it keeps its keyring in
            ``<folder>/keys``, as the built-in stores do.

    Raises:
        ConfigurationError: ``candidates`` below 2, or the run's own errors.
    """
    if candidates < 2:
        raise ConfigurationError("candidates must be at least 2 (the fact and a distractor)")
    out = Path(out_dir)

    def answer(tasks: Sequence[EvalExample], folder: Path, count: int | None) -> list[Record]:
        return run_eval(
            tasks,
            device=device,
            cloud=cloud,
            out_dir=folder,
            methods=methods,
            lams=lams,
            taus=taus,
            limit=count,
            max_new_tokens=max_new_tokens,
            memory_factory=memory_factory,
            audit_payloads="sealed",
            progress=progress,
        )

    records = answer(examples, out / "eval", limit)
    attacker = ModelAttacker(attacker_model) if attacker_model is not None else None
    texts = _texts(records, out / "eval", device.decode)
    trials = _trials(records, texts, examples, candidates, attacker)
    report: Record = {
        "candidates": candidates,
        "examples": len({r["id"] for r in records}),
        "methods": _method_rows(records, trials),
        "canaries": _canaries(examples, canaries, out, answer, attacker, device),
        "summary": summarize(records),
    }
    _write(out, report, trials)
    return report


def _trials(
    records: Sequence[Record],
    texts: dict[tuple[str, str], str],
    examples: Sequence[EvalExample],
    candidates: int,
    attacker: ModelAttacker | None,
) -> list[AttackTrial]:
    """Both attackers on every fact of every answer, from what left for it."""
    by_id = {e.id: e for e in examples}
    trials: list[AttackTrial] = []
    for r in records:
        key = (str(r["id"]), str(r["method"]))
        example = by_id[key[0]]
        if example.facts:
            trials += attack_trials(
                r, example, texts[key], examples, n=candidates, attacker=attacker
            )
    return trials


def _canaries(
    examples: Sequence[EvalExample],
    count: int,
    out: Path,
    answer: Callable[[Sequence[EvalExample], Path, int | None], list[Record]],
    attacker: ModelAttacker | None,
    device: ModelBackend,
) -> list[Record]:
    """Plant a secret for ``count`` users, run their requests, and measure each exposure."""
    if count < 1:
        return []
    tasks = canary_examples(examples, count)
    records = answer(tasks, out / "canary", None)
    texts = _texts(records, out / "canary", device.decode)
    by_id = {e.id: e for e in tasks}
    rows = []
    for r in records:
        key = (str(r["id"]), str(r["method"]))
        secret = by_id[key[0]].facts[0]
        found = exposure(attacker, CANARY_SPACE.request, texts[key], secret, CANARY_SPACE)
        rows.append({"id": key[0], "method": key[1], **found})
    return rows


def _write(out: Path, report: Record, trials: Sequence[AttackTrial]) -> None:
    from specsteer._attack_report import render_markdown, render_plot

    (out / "attack.json").write_text(
        json.dumps({**report, "trials": [asdict(t) for t in trials]}, indent=1) + "\n",
        encoding="utf-8",
    )
    (out / "attack.md").write_text(render_markdown(report), encoding="utf-8")
    try:
        render_plot(report, out / "attack.png")
    except ImportError as e:  # matplotlib is in the eval extra
        logger.warning("attack: no plot (%s); install specsteer[eval]", e)
