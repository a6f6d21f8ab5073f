"""``run_eval`` end to end with tiny models: every method, records on disk, resume, summary."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specsteer import ConfigurationError, InvalidInputError
from specsteer._eval import (
    EvalExample,
    _memory_user,
    load_examples,
    load_records,
    method_labels,
    run_eval,
    summarize,
)
from specsteer.backends import ModelBackend
from specsteer.cloud_adapter import (
    CloudVerifier,
    InProcessVerifier,
    VerifyRequest,
    VerifyResponse,
)
from specsteer.memory import MemoryStore

from .conftest import hashed_memory

LABELS = [
    "device_only",
    "cloud_only",
    "token_fusion",
    "speculative",
    "specsteer@0.1",
    "specsteer@0.5",
]
TOKENS = 8


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def pairs(path: Path) -> list[tuple[str, str]]:
    return [(json.loads(x)["id"], json.loads(x)["method"]) for x in lines(path)]


@pytest.fixture(scope="module")
def slice_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> Iterator[tuple[Path, Path, list[EvalExample], list[dict[str, Any]]]]:
    """Three shipped examples through every method, run once for the tests below."""
    home = tmp_path_factory.mktemp("home") / "specsteer"
    out = tmp_path_factory.mktemp("eval") / "run"
    examples = load_examples()[:3]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECSTEER_HOME", str(home))
        records = run_eval(
            examples,
            device=tiny_pair[0],
            cloud=tiny_pair[1],
            out_dir=out,
            max_new_tokens=TOKENS,
            memory_factory=hashed_memory,
        )
    yield out, home, examples, records


def test_every_pair_is_written_once(slice_run: Any) -> None:
    out, _, examples, records = slice_run
    expected = [(e.id, m) for e in examples for m in LABELS]
    assert pairs(out / "results.jsonl") == expected
    assert [(r["id"], r["method"]) for r in records] == expected
    assert load_records(out / "results.jsonl") == records


def test_numbers_are_in_range(slice_run: Any) -> None:
    _, _, _, records = slice_run
    for r in records:
        assert 0.0 <= r["rouge1"] <= 1.0 and 0.0 <= r["rougeL"] <= r["rouge1"] + 1e-9
        assert 0.0 <= r["fact_recall"] <= 1.0
        assert 1 <= r["tokens"] <= TOKENS
        assert r["words"] == len(r["text"].split())
        assert isinstance(r["repetitive"], bool) and isinstance(r["echo"], bool)
        assert r["tokens_per_second"] > 0 and r["wall_seconds"] > 0
        assert r["finish_reason"] in ("eos", "length")
        assert r["fallback"] is None
    by = {(r["id"], r["method"]): r for r in records}
    for r in records:
        if r["method"] in ("device_only", "cloud_only", "token_fusion"):
            assert r["acceptance_rate"] is None
        else:
            assert 0.0 <= r["acceptance_rate"] <= 1.0
        assert (r["cloud_calls"] == 0) == (r["method"] == "device_only")
    assert by[(records[0]["id"], "specsteer@0.1")]["lam"] == 0.1
    assert by[(records[0]["id"], "cloud_only")]["lam"] is None


def test_state_stays_under_the_output_folder(slice_run: Any) -> None:
    out, home, examples, _ = slice_run
    assert not home.exists() or not any(home.rglob("*"))
    assert (out / "state" / "memory").is_dir()
    assert (out / "state" / "audit" / "audit.jsonl").stat().st_size > 0
    settings = json.loads((out / "run.json").read_text())
    assert settings["config"]["max_new_tokens"] == TOKENS and settings["config"]["greedy"]
    assert settings["device_runtime"] == "transformers (float32)"
    with hashed_memory(out / "state") as store:
        # One memory user per (user, profile); each history went in once, whole.
        for example in examples:
            assert store.count(_memory_user(example)) == len(set(example.profile))


def test_the_summary_is_written(slice_run: Any) -> None:
    out, _, _, records = slice_run
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert text == summarize(records)
    for label in LABELS:
        assert f"| {label} | 3 |" in text
    assert "| specsteer@0.5 − device_only | 3 |" in text


def test_a_second_call_runs_nothing(
    slice_run: Any, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> None:
    out, _, examples, records = slice_run
    before = (out / "results.jsonl").read_bytes()

    def no_store(root: Path) -> MemoryStore:
        raise AssertionError("nothing to run, so no store should be opened")

    again = run_eval(
        examples,
        device=tiny_pair[0],
        cloud=tiny_pair[1],
        out_dir=out,
        max_new_tokens=TOKENS,
        memory_factory=no_store,
    )
    assert again == records
    assert (out / "results.jsonl").read_bytes() == before


class FlakyCloud(InProcessVerifier):
    """The in-process verifier, until a request carries ``query``: then the process "dies"."""

    def __init__(self, llm: ModelBackend, query: str) -> None:
        super().__init__(llm)
        self.query = query

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        if any(m.content == self.query for m in request.prompt):
            raise RuntimeError("the process died here")
        return super().transmit(request, wire)


METHODS = ["device_only", "cloud_only", "specsteer"]
LABELS_SMALL = ["device_only", "cloud_only", "specsteer@0.1"]


def small_run(
    out: Path, tiny_pair: tuple[ModelBackend, ModelBackend], cloud: Any = None, **kw: Any
) -> list[dict[str, Any]]:
    return run_eval(
        load_examples()[:2],
        device=tiny_pair[0],
        cloud=cloud if cloud is not None else tiny_pair[1],
        out_dir=out,
        methods=METHODS,
        lams=[0.1],
        max_new_tokens=TOKENS,
        **{"memory_factory": hashed_memory, **kw},
    )


def test_resume_after_a_crash(tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend]) -> None:
    out = tmp_path / "run"
    first, second = load_examples()[:2]
    # The second example's first verify request kills the run: after the first example's three
    # pairs and the second's device_only and cloud_only ones (a generate request is no verify).
    with pytest.raises(RuntimeError, match="died"):
        small_run(out, tiny_pair, cloud=FlakyCloud(tiny_pair[1], second.input))
    finished = lines(out / "results.jsonl")
    assert pairs(out / "results.jsonl") == [
        *((first.id, m) for m in LABELS_SMALL),
        (second.id, "device_only"),
        (second.id, "cloud_only"),
    ]
    records = small_run(out, tiny_pair)
    expected = [(e.id, m) for e in (first, second) for m in LABELS_SMALL]
    assert [(r["id"], r["method"]) for r in records] == expected
    assert pairs(out / "results.jsonl") == expected
    assert lines(out / "results.jsonl")[:5] == finished


def untimed(line: str) -> dict[str, Any]:
    """A record without what differs between runs: times, and the audit log's sequence numbers
    (a resumed run's log goes on from where it stopped)."""
    record = json.loads(line)
    skip = ("tokens_per_second", "wall_seconds", "audit_seqs")
    return {k: v for k, v in record.items() if k not in skip}


def test_resume_after_a_cut_line(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> None:
    out = tmp_path / "run"
    small_run(out, tiny_pair)
    whole = lines(out / "results.jsonl")
    # A crash in the middle of writing the third record: two lines and half of the third.
    (out / "results.jsonl").write_text(
        whole[0] + "\n" + whole[1] + "\n" + whole[2][: len(whole[2]) // 2], encoding="utf-8"
    )
    records = small_run(out, tiny_pair)
    now = lines(out / "results.jsonl")
    assert len(records) == 6 and len(now) == 6 and now[:2] == whole[:2]
    assert len(set(pairs(out / "results.jsonl"))) == 6
    # Greedy and seeded: the pairs run again come out the same, apart from their timings.
    assert [untimed(x) for x in now] == [untimed(x) for x in whole]


def test_a_run_with_other_settings_is_refused(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> None:
    out = tmp_path / "run"
    small_run(out, tiny_pair, limit=1)
    with pytest.raises(ConfigurationError, match="other settings \\(config differ\\)"):
        small_run(out, tiny_pair, limit=1, seed=5)
    with pytest.raises(ConfigurationError, match="privacy differ"):
        small_run(out, tiny_pair, limit=1, privacy=False)
    assert len(lines(out / "results.jsonl")) == 3


@pytest.mark.parametrize(
    ("methods", "lams", "message"),
    [
        (["device_only", "gpt"], [0.1], "unknown method 'gpt'"),
        ([], [0.1], "no method to run"),
        (["specsteer"], [], "needs at least one lam"),
        (["specsteer"], [-0.1], "finite number >= 0"),
        (["specsteer"], [float("inf")], "finite number >= 0"),
    ],
)
def test_bad_methods_are_refused(methods: list[str], lams: list[float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        method_labels(methods, lams)


def test_method_labels_keep_the_report_order() -> None:
    got = method_labels(["specsteer", "cloud_only", "device_only"], [0.5, 0.1, 0.5])
    assert got == [
        ("device_only", "device_only", None, None),
        ("cloud_only", "cloud_only", None, None),
        ("specsteer@0.5", "specsteer", 0.5, None),
        ("specsteer@0.1", "specsteer", 0.1, None),
    ]
    with_taus = method_labels(["specsteer"], [0.1], [2.0, 0.5])
    assert with_taus == [
        ("specsteer@0.1", "specsteer", 0.1, None),
        ("specsteer@0.1/tau2", "specsteer", 0.1, 2.0),
        ("specsteer@0.1/tau0.5", "specsteer", 0.1, 0.5),
    ]


@pytest.mark.parametrize("limit", [0, -1, True])
def test_a_bad_limit_is_refused(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend], limit: Any
) -> None:
    with pytest.raises(InvalidInputError, match="limit must be a positive int"):
        small_run(tmp_path / "run", tiny_pair, limit=limit)


# -- summarize ---------------------------------------------------------------------------------


def rec(i: str, method: str, rouge_l: float, facts: float | None, **kw: Any) -> dict[str, Any]:
    return {
        "id": i,
        "method": method,
        "rouge1": rouge_l,
        "rougeL": rouge_l,
        "fact_recall": facts,
        "words": 10,
        "repetitive": False,
        "echo": False,
        "tokens_per_second": 2.0,
        "acceptance_rate": None,
        **kw,
    }


RECORDS = [
    rec("a", "device_only", 0.2, 0.5),
    rec("b", "device_only", 0.4, None),
    rec("a", "cloud_only", 0.1, 0.0, echo=True),
    rec("b", "cloud_only", 0.1, None),
    rec("a", "specsteer@0.1", 0.3, 1.0, acceptance_rate=0.5),
    rec("b", "specsteer@0.1", 0.5, None, acceptance_rate=0.7, repetitive=True),
    rec("a", "specsteer@0.5", 0.3, 0.5, acceptance_rate=0.25),
]


def first_rows(text: str) -> dict[str, str]:
    """Each method's row of the first table."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        rows.setdefault(line.split(" | ")[0].lstrip("| "), line)
    return rows


def test_summary_table() -> None:
    text = summarize(RECORDS)
    rows = first_rows(text)
    assert rows["device_only"] == (
        "| device_only | 2 | 0.300 ± 0.100 | 0.300 ± 0.100 | 0.500 ± 0.000 | 10.0 ± 0.0 "
        "| 0.00 ± 0.00 | 0.00 ± 0.00 | 2.00 ± 0.00 | — |"
    )
    assert rows["cloud_only"].split(" | ")[7] == "0.50 ± 0.50"  # echo share
    assert rows["specsteer@0.1"].split(" | ")[2] == "0.400 ± 0.100"
    assert rows["specsteer@0.1"].split(" | ")[6] == "0.50 ± 0.50"  # repetition share
    assert rows["specsteer@0.1"].rstrip(" |").endswith("0.60 ± 0.10")  # acceptance
    labels = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines()[2:6]]
    assert labels == ["device_only", "cloud_only", "specsteer@0.1", "specsteer@0.5"]
    assert text.splitlines()[6] == ""


def test_summary_counts_failures_over_the_answers_they_apply_to() -> None:
    flagged = [
        {**RECORDS[0], "self_address": True, "wrong_recipient": None, "refusal": False},
        {**RECORDS[1], "self_address": False, "wrong_recipient": True, "refusal": True},
        {**RECORDS[2], "self_address": None, "owner_swap": True, "reads_notes": False},
    ]
    text = summarize(flagged)
    rows = first_rows(text)
    header = next(line for line in text.splitlines() if "self-address" in line)
    assert header.split(" | ")[1:3] == ["self-address", "placeholder"]
    device = [line for line in text.splitlines() if line.startswith("| device_only | ")]
    assert device[1] == (
        "| device_only | 1/2 (50.0%) | — | 1/1 (100.0%) | 1/2 (50.0%) | — | — | — | — |"
    )
    assert rows["cloud_only"].split(" | ")[1] == "1"  # the first table is unchanged
    cloud = [line for line in text.splitlines() if line.startswith("| cloud_only | ")]
    assert cloud[1] == "| cloud_only | — | — | — | — | — | 1/1 (100.0%) | 0/1 (0.0%) | — |"


def test_summary_paired_differences() -> None:
    text = summarize(RECORDS)
    assert "| specsteer@0.1 − cloud_only | 2 | +0.300 ± 0.100 | +1.000 ± 0.000 |" in text
    assert "| specsteer@0.1 − device_only | 2 | +0.100 ± 0.000 | +0.500 ± 0.000 |" in text
    # Only the examples both answered are paired.
    assert "| specsteer@0.5 − device_only | 1 | +0.100 ± 0.000 | +0.000 ± 0.000 |" in text


def test_summary_without_baselines_says_so() -> None:
    text = summarize([r for r in RECORDS if r["method"].startswith("specsteer")])
    assert "No paired differences" in text
    assert "| specsteer@0.5 | 1 |" in text


def test_cloud_only_needs_a_cloud_that_can_generate(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> None:
    class VerifyOnly(CloudVerifier):
        def verify(self, request: VerifyRequest) -> VerifyResponse:
            raise AssertionError("nothing may be sent")

    with pytest.raises(ConfigurationError, match="cloud_only needs a cloud that can generate"):
        small_run(tmp_path / "run", tiny_pair, cloud=VerifyOnly())
    assert not (tmp_path / "run").exists()


def test_rescore_measures_stored_answers_by_the_current_definitions(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend]
) -> None:
    out = tmp_path / "run"
    first = small_run(out, tiny_pair)
    # Answers stored before a metric existed: drop it, and plant an answer it flags.
    old = [{k: v for k, v in r.items() if k != "refusal"} for r in first]
    old[0] = {**old[0], "text": "I'm sorry, but I can't assist with that."}
    (out / "results.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in old), encoding="utf-8"
    )

    def no_store(root: Path) -> MemoryStore:
        raise AssertionError("nothing to run, so no store should be opened")

    again = small_run(out, tiny_pair, memory_factory=no_store, rescore_done=True)
    assert [r["refusal"] for r in again] == [True] + [False] * (len(again) - 1)
    assert again[0]["words"] == 8  # every metric, not only the new one, read the new text
    assert load_records(out / "results.jsonl") == again
    assert [r["text"] for r in again[1:]] == [r["text"] for r in first[1:]]


def test_a_run_keeps_only_the_current_users_model_streams(
    tmp_path: Path, tiny_pair: tuple[ModelBackend, ModelBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each user's assistant holds the device model's KV streams (a llama.cpp context each): a
    run over many users keeps only the current user's, so its memory does not grow with them."""
    device = tiny_pair[0]
    made: list[weakref.ref[Any]] = []
    most = 0
    real = device.stream

    def counted() -> Any:
        nonlocal most
        gc.collect()
        stream = real()
        made.append(weakref.ref(stream))
        most = max(most, sum(r() is not None for r in made))
        return stream

    monkeypatch.setattr(device, "stream", counted)
    examples = load_examples()[:8]
    users = {_memory_user(e) for e in examples}
    run_eval(
        examples,
        device=device,
        cloud=tiny_pair[1],
        out_dir=tmp_path / "run",
        methods=["device_only"],
        max_new_tokens=2,
        memory_factory=hashed_memory,
    )
    assert len(users) >= 3 and len(made) == 2 * len(users)  # two streams for each user
    assert most <= 4, most  # the current user's two, and the next user's being made
