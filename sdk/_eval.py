"""Quality evaluation: every decoding method on LaMP / LongLaMP-style personal writing tasks.

Each example is one user's private history (``profile``), a public request (``input``) and a
reference answer (``output``). The profile goes into that user's encrypted memory store; every
method answers through the public API (:class:`~specsteer.Assistant`), which retrieves the
private context from the store; the answers are scored against the reference (ROUGE-1, ROUGE-L)
and the facts a good answer should contain. Results are appended to ``results.jsonl`` one line
per (example, method) as each finishes, so a run that stops resumes where it stopped.

See ``docs/evaluation.md`` for the dataset format and the metrics' exact definitions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from specsteer._assistant import Assistant
from specsteer._config import GenerationConfig, Method
from specsteer._egress import PrivateEgress
from specsteer._errors import ConfigurationError, InvalidInputError, MissingDependencyError
from specsteer._eval_people import (
    addresses_self,
    has_placeholder,
    is_refusal,
    reads_out,
    restates_request,
    speaks_of_reader,
    swaps_owner,
    wrong_recipient,
)
from specsteer._methods import METHOD_NAMES, method_spec
from specsteer._prompt import DEFAULT_SYSTEM_PROMPT
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier
from specsteer.privacy import AuditLog, EgressPolicy, PrivacyReport

if TYPE_CHECKING:
    from specsteer.memory import MemoryStore

__all__ = [
    "METHODS",
    "SHIPPED_SETS",
    "EvalExample",
    "default_dataset",
    "fact_recall",
    "is_echo",
    "is_repetitive",
    "load_examples",
    "load_records",
    "method_labels",
    "rescore",
    "rouge",
    "run_eval",
    "score",
    "summarize",
    "word_count",
]

logger = logging.getLogger(__name__)

#: Told ``(done, total)`` after each finished pair of a run (``run_eval(progress=...)``).
OnProgress = Callable[[int, int], None]

#: The methods compared, in the order they are run and reported.
METHODS: Final[tuple[Method, ...]] = METHOD_NAMES
RESULTS: Final = "results.jsonl"
SUMMARY: Final = "summary.md"
SETTINGS: Final = "run.json"
_FORMAT: Final = {"format": "specsteer-eval", "version": 1}

Record = dict[str, Any]

# -- the dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalExample:
    """One task: a user's private history, a public request and a reference answer."""

    id: str
    user_id: str
    input: str
    profile: tuple[str, ...]
    output: str
    #: Short strings a good answer should contain (names, places, foods); may be empty.
    facts: tuple[str, ...] = ()
    #: The user's own name, when known ("" otherwise): an answer must not greet them by it.
    writer: str = ""
    #: Whom the request's relation names ("my sister" -> "Lena"), when it names someone.
    recipient: str = ""


#: The sets shipped with the package, by name: personal writing tasks, and the paraphrase set
#: (six kinds of personal writing, each asked for in six phrasings).
SHIPPED_SETS: Final = ("personal_writing", "personal_requests")


def default_dataset(name: str = "personal_writing") -> Path:
    """A shipped set's file: the personal-writing set (``specsteer/data/personal_writing.jsonl``)
    by default, or ``"personal_requests"``, the paraphrase set.

    Raises:
        InvalidInputError: not a shipped set's name.
    """
    if name not in SHIPPED_SETS:
        raise InvalidInputError(
            f"no shipped set is called {name!r}; choose one of {', '.join(SHIPPED_SETS)}"
        )
    return Path(str(resources.files("specsteer") / "data" / f"{name}.jsonl"))


def load_examples(path: str | os.PathLike[str] | None = None) -> list[EvalExample]:
    """Read LaMP / LongLaMP-style JSONL, one example per line (blank lines are skipped).

    Each line is an object with ``user_id`` (str or int), ``input`` (str), ``profile`` (a
    non-empty list of ``{"text": ...}`` objects or plain strings; a ``title`` is joined to its
    ``text``), reference ``output`` (str), and optionally ``facts`` (list of str) and ``id``
    (str or int; default: the line number).

    Args:
        path: the file, or the name of a shipped set (:data:`SHIPPED_SETS`) when no such file
            exists; default :func:`default_dataset`.

    Raises:
        InvalidInputError: the file cannot be read, or a line is malformed; the message names
            the file, the line and the fix.
    """
    if path is None:
        source = default_dataset()
    elif str(path) in SHIPPED_SETS and not Path(path).exists():
        source = default_dataset(str(path))
    else:
        source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidInputError(
            f"cannot read the dataset {source}: {reason}; pass a readable UTF-8 JSONL file"
        ) from e
    examples: list[EvalExample] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        example = _parse_line(line, f"{source}, line {lineno}", default_id=str(lineno))
        if example.id in seen:
            raise InvalidInputError(
                f"{source}, line {lineno}: id {example.id!r} repeats an earlier line; "
                "give every example its own id"
            )
        seen.add(example.id)
        examples.append(example)
    if not examples:
        raise InvalidInputError(f"the dataset {source} holds no examples; add one JSON per line")
    return examples


def _parse_line(line: str, where: str, *, default_id: str) -> EvalExample:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f"{where}: invalid JSON ({e.msg} at column {e.colno}); write one JSON object per line"
        ) from e
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    facts = raw.get("facts", [])
    if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
        raise InvalidInputError(f"{where}: 'facts' must be a list of non-empty strings")
    return EvalExample(
        id=_ident(raw.get("id", default_id), "id", where),
        user_id=_ident(raw.get("user_id"), "user_id", where),
        input=_text(raw, "input", where),
        profile=_profile(raw.get("profile"), where),
        output=_text(raw, "output", where),
        facts=tuple(facts),
        writer=_optional_text(raw, "writer", where),
        recipient=_optional_text(raw, "recipient", where),
    )


def _ident(value: object, field: str, where: str) -> str:
    if value is None:
        raise InvalidInputError(f"{where}: missing field {field!r}; add it (a string)")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise InvalidInputError(f"{where}: {field!r} must be a non-empty string or an integer")
    return str(value)


def _text(raw: Mapping[str, object], field: str, where: str) -> str:
    if field not in raw:
        raise InvalidInputError(f"{where}: missing field {field!r}; add it (a non-empty string)")
    value = raw[field]
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: {field!r} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{where}: {field!r} is empty; write the text")
    return value


def _optional_text(raw: Mapping[str, object], field: str, where: str) -> str:
    value = raw.get(field, "")
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{where}: {field!r} must be a string (a name), not {type(value).__name__}"
        )
    return value.strip()


def _profile(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        raise InvalidInputError(f"{where}: missing field 'profile'; add the user's history")
    if not isinstance(value, list):
        raise InvalidInputError(f"{where}: 'profile' must be a list of items")
    if not value:
        raise InvalidInputError(f"{where}: 'profile' is empty; give the user some history")
    return tuple(_profile_item(item, f"{where}, profile item {i}") for i, item in enumerate(value))


def _profile_item(item: object, where: str) -> str:
    if isinstance(item, str):
        text = item
    elif isinstance(item, dict) and isinstance(item.get("text"), str):
        title = item.get("title")
        text = (
            f"{title}: {item['text']}" if isinstance(title, str) and title.strip() else item["text"]
        )
    else:
        raise InvalidInputError(f"{where}: must be a string or an object with a string 'text'")
    if not text.strip():
        raise InvalidInputError(f"{where}: the text is empty")
    return text


# -- metrics (pure functions of text) ------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise MissingDependencyError("rouge-score", extra="eval", purpose="ROUGE scores") from e
    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def rouge(answer: str, reference: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F1 of ``answer`` against ``reference`` (``rouge-score``, stemmed).

    Returns:
        ``{"rouge1": f1, "rougeL": f1}``, each in [0, 1].
    """
    scores = _scorer().score(reference, answer)
    return {"rouge1": scores["rouge1"].fmeasure, "rougeL": scores["rougeL"].fmeasure}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def fact_recall(answer: str, facts: Sequence[str]) -> float | None:
    """Share of ``facts`` found in ``answer``; None when there are no facts.

    A fact is found when it occurs in the answer as whole words: both compared case-insensitively
    (Unicode case folding, NFKC) with runs of whitespace made one space, and the match may not
    start or end inside a word (``"Ana"`` is not found in ``"banana"``).
    """
    if not facts:
        return None
    text = _norm(answer)
    found = sum(re.search(rf"(?<!\w){re.escape(_norm(f))}(?!\w)", text) is not None for f in facts)
    return found / len(facts)


def word_count(text: str) -> int:
    """Words in ``text``: runs of non-whitespace."""
    return len(text.split())


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def is_repetitive(text: str, *, n: int = 4, times: int = 3) -> bool:
    """Whether some ``n``-word sequence occurs ``times`` or more times in ``text``.

    Words are the lower-cased ``\\w+`` runs, so punctuation and case do not break a repeat;
    occurrences may overlap.
    """
    words = _tokens(text)
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return any(count >= times for count in grams.values())


def is_echo(answer: str, *, system_prompt: str, query: str, span: int = 12) -> bool:
    """Whether ``answer`` parrots its instructions instead of answering.

    True when the answer contains the whole system prompt, or any run of ``span`` consecutive
    words of the system prompt or the query (words as in :func:`is_repetitive`).
    """
    words = _tokens(answer)
    sys_words = _tokens(system_prompt)
    if sys_words and _contains(words, sys_words):
        return True
    grams = {tuple(words[i : i + span]) for i in range(len(words) - span + 1)}
    for source in (sys_words, _tokens(query)):
        if any(tuple(source[i : i + span]) in grams for i in range(len(source) - span + 1)):
            return True
    return False


def _contains(words: Sequence[str], part: Sequence[str]) -> bool:
    k = len(part)
    return any(list(words[i : i + k]) == list(part) for i in range(len(words) - k + 1))


def score(answer: str, example: EvalExample, *, system_prompt: str) -> Record:
    """Every quality metric of one answer, as a flat dict (``None`` where one does not apply:
    fact recall without facts, self-address without the user's name, wrong recipient when the
    request names nobody, the user's things called the reader's where the request names no
    reader or calls nothing the user's, notes read out without a history, the reader named as
    someone else where the request names nobody)."""
    return {
        **rouge(answer, example.output),
        "fact_recall": fact_recall(answer, example.facts),
        "words": word_count(answer),
        "repetitive": is_repetitive(answer),
        "echo": is_echo(answer, system_prompt=system_prompt, query=example.input),
        "self_address": addresses_self(answer, example.writer),
        "placeholder": has_placeholder(answer),
        "wrong_recipient": wrong_recipient(answer, example.recipient),
        "refusal": is_refusal(answer),
        "restates": restates_request(answer, example.input),
        "owner_swap": swaps_owner(answer, example.input) if example.recipient else None,
        "reads_notes": reads_out(answer, example.profile) if example.profile else None,
        "speaks_of_reader": speaks_of_reader(answer, example.recipient),
    }


# -- the run -------------------------------------------------------------------------------------


#: One method to run: (label, method, lam, tau).
Label = tuple[str, Method, float | None, float | None]


def method_labels(
    methods: Sequence[str], lams: Sequence[float], taus: Sequence[float] = ()
) -> list[Label]:
    """``(label, method, lam, tau)`` for each method to run: SpecSteer once per lam
    (``specsteer@0.1``), and once more per lam and context-lift threshold tau
    (``specsteer@0.1/tau2``, the guard's ``max_context_lift``).

    Raises:
        ConfigurationError: an unknown method, a negative lam or tau, or SpecSteer with no lam.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigurationError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if not methods:
        raise ConfigurationError(f"no method to run; choose from {', '.join(METHODS)}")
    for name, values in (("lam", lams), ("tau", taus)):
        if any(not (isinstance(x, int | float) and 0 <= x < math.inf) for x in values):
            raise ConfigurationError(f"every {name} must be a finite number >= 0")
    if "specsteer" in methods and not lams:
        raise ConfigurationError("specsteer needs at least one lam (e.g. 0.1)")
    labels: list[Label] = []
    for m in METHODS:
        if m not in methods:
            continue
        if m != "specsteer":
            labels.append((m, m, None, None))
            continue
        for lam in dict.fromkeys(lams):
            labels.append((f"specsteer@{lam:g}", m, float(lam), None))
            labels += [(f"specsteer@{lam:g}/tau{t:g}", m, float(lam), float(t)) for t in taus]
    return labels


def _default_memory(root: Path) -> MemoryStore:
    from specsteer.memory import MemoryStore
    from specsteer.privacy import Keyring

    return MemoryStore(root / "memory", keyring=Keyring(root / "keys"))


def _memory_user(example: EvalExample) -> str:
    """The store's user id for this example's history: one per distinct (user, profile) pair.

    LaMP gives some users a different history per example, so the id covers the profile too.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(example.user_id.encode())
    for item in example.profile:
        digest.update(b"\0" + item.encode())
    return f"eval-{digest.hexdigest()}"


class _Session:
    """What one run shares: the verifier, the memory store, the audit log, one assistant per user."""

    def __init__(
        self,
        device: ModelBackend,
        cloud: CloudVerifier,
        store: MemoryStore,
        audit_dir: Path,
        *,
        config: GenerationConfig,
        privacy: bool,
        payloads: Literal["digest", "sealed"] = "digest",
    ) -> None:
        self.device, self.cloud, self.store, self.config = device, cloud, store, config
        # One log for the whole run; by default digests only: it proves what left without
        # keeping it. An attack on what left needs the payloads: sealed with the run's key.
        self.audit = (
            AuditLog(audit_dir / "audit.jsonl", keyring=store.keyring, payload_storage=payloads)
            if privacy
            else None
        )
        # Only the current user's assistants are kept: each holds the device model's KV
        # streams, and a run over every user that kept them all grew past 20 GB.
        self._assistants: dict[tuple[str, float | None], Assistant] = {}
        self._stored: set[str] = set()

    def assistant(self, example: EvalExample, tau: float | None = None) -> Assistant:
        """The assistant of this example's user (its history stored the first time), with the
        guard's context-lift threshold ``tau``."""
        user = _memory_user(example)
        found = self._assistants.get((user, tau))
        if found is not None:
            return found
        self._assistants = {k: a for k, a in self._assistants.items() if k[0] == user}
        if user not in self._stored:
            self.store.add_many(user, list(dict.fromkeys(example.profile)), progress=False)
            self._stored.add(user)
        privacy: bool | PrivateEgress = False
        if self.audit is not None:
            policy = EgressPolicy(max_context_lift=tau)
            privacy = PrivateEgress(
                policy=policy, audit_log=self.audit, decode_ids=self.device.decode
            )
        made = Assistant(
            self.device,
            self.cloud,
            memory=self.store,
            user_id=user,
            config=self.config,
            privacy=privacy,
        )
        self._assistants[(user, tau)] = made
        return made


def _run_one(session: _Session, example: EvalExample, label: Label) -> Record:
    name, method, lam, tau = label
    assistant = session.assistant(example, tau)
    overrides: dict[str, Any] = {"method": method}
    if lam is not None:
        overrides["lam"] = lam
    t0 = time.perf_counter()
    result = assistant.generate(example.input, **overrides)
    wall = time.perf_counter() - t0
    s = result.stats
    metrics = score(result.text, example, system_prompt=assistant.system_prompt)
    return {
        "id": example.id,
        "user_id": example.user_id,
        "method": name,
        "lam": lam,
        "tau": tau,
        "text": result.text,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
        "tokens": s.new_tokens,
        "tokens_per_second": round(s.tokens_per_second, 3),
        "acceptance_rate": round(s.acceptance_rate, 4) if s.drafted_tokens else None,
        "cloud_calls": s.cloud_calls,
        "local_rounds": s.local_rounds,
        "wall_seconds": round(wall, 4),
        "finish_reason": result.finish_reason,
        "fallback": s.fallback,
        **_privacy_fields(result.privacy),
    }


def _privacy_fields(report: PrivacyReport | None) -> Record:
    """What left for one answer: its audit records, and the context lift kept and sent."""
    if report is None:
        return {}
    return {
        "audit_seqs": list(report.audit_seqs),
        "lift_kept_tokens": report.tokens_kept_for_lift,
        "lift_sent_nats": round(report.context_lift_sent, 4),
    }


def run_eval(
    examples: Sequence[EvalExample],
    *,
    device: ModelBackend,
    cloud: ModelBackend | CloudVerifier,
    out_dir: str | os.PathLike[str],
    methods: Sequence[str] = METHODS,
    lams: Sequence[float] = (0.1, 0.5),
    taus: Sequence[float] = (),
    max_new_tokens: int = 64,
    limit: int | None = None,
    seed: int = 0,
    greedy: bool = True,
    config: GenerationConfig | None = None,
    memory_factory: Callable[[Path], MemoryStore] | None = None,
    privacy: bool = True,
    audit_payloads: Literal["digest", "sealed"] = "digest",
    progress: bool | OnProgress = True,
    rescore_done: bool = False,
) -> list[Record]:
    """Answer every example with every method, score the answers, and write them down.

    Each (example, method) pair is one JSON line in ``out_dir/results.jsonl``, appended and
    flushed as soon as it finishes; a later call with the same ``out_dir`` and settings skips
    the pairs already there, so an interrupted run loses nothing. ``out_dir/summary.md`` gets
    :func:`summarize` of the pairs asked for. Everything the run stores (the encrypted memory
    store, its keys, the audit log) lives under ``out_dir``.

    Args:
        examples: the tasks (see :func:`load_examples`).
        device: the device model.
        cloud: the cloud model (run in this process), or any cloud verifier.
        out_dir: the run's folder; created if needed.
        methods: which of :data:`METHODS` to run.
        lams: SpecSteer's acceptance thresholds; each is its own method, ``specsteer@<lam>``.
        taus: context-lift thresholds (the guard's ``max_context_lift``); SpecSteer runs once
            more per lam and tau, ``specsteer@<lam>/tau<tau>``.
        max_new_tokens: output length limit.
        limit: only the first ``limit`` examples.
        seed: the seed of every generation.
        greedy: greedy decoding (the default) or sampling.
        config: base generation settings; default :data:`specsteer.DEFAULT_CONFIG`.
        memory_factory: builds the memory store from a folder under ``out_dir``; default an
            embedded store with the bundled embedder and a keyring in that folder.
        privacy: screen and audit every payload as the shipped assistant does; False sends
            requests unscreened.
        audit_payloads: what the audit log keeps of each payload: its digest, or the payload
            sealed with the run's key (what :func:`specsteer.run_attack` reads).
        progress: True shows a progress bar on stderr when it is a terminal; a callable is
            called as ``progress(done, total)`` after each finished pair instead.
        rescore_done: first score the answers already in ``results.jsonl`` again with the
            current metric definitions (:func:`rescore`), rewriting the file.

    Returns:
        The records of the pairs asked for, finished earlier or now, in run order.

    Raises:
        ConfigurationError: bad methods or lams, or ``out_dir`` holds a run with other settings.
        InvalidInputError: no examples, or a bad ``limit``.
    """
    labels = method_labels(methods, lams, taus)
    if taus and not privacy:
        raise ConfigurationError("taus set the guard's context-lift policy: run with privacy=True")
    chosen = _select(examples, limit)
    base = _base_config(config, max_new_tokens=max_new_tokens, seed=seed, greedy=greedy)
    verifier = _verifier_for(cloud, methods)
    out = Path(out_dir)
    settings = _settings(device, verifier, base, privacy, audit_payloads)
    done = _open_run(out, settings, examples, rescore_done=rescore_done)
    todo = [(e, lab) for e in chosen for lab in labels if (e.id, lab[0]) not in done]
    logger.info(
        "eval: %d pairs to run, %d already done", len(todo), len(chosen) * len(labels) - len(todo)
    )
    if todo:
        store = (memory_factory or _default_memory)(out / "state")
        audit = out / "state" / "audit"
        with contextlib.closing(store):
            session = _Session(
                device,
                verifier,
                store,
                audit,
                config=base,
                privacy=privacy,
                payloads=audit_payloads,
            )
            _run_pairs(session, todo, out / RESULTS, done, progress=progress)
    records = [done[(e.id, lab[0])] for e in chosen for lab in labels]
    (out / SUMMARY).write_text(summarize(records), encoding="utf-8")
    return records


def _verifier_for(cloud: ModelBackend | CloudVerifier, methods: Sequence[str]) -> CloudVerifier:
    """The cloud as a verifier, checked to generate when a method asks it to."""
    verifier = cloud if isinstance(cloud, CloudVerifier) else InProcessVerifier(cloud)
    if any(method_spec(m).cloud == "generate" for m in methods) and not verifier.can_generate:
        raise ConfigurationError(
            "cloud_only needs a cloud that can generate (the model in this process or a "
            "`specsteer serve` server); leave cloud_only out of methods for this one"
        )
    return verifier


def make_run_folder(out: Path) -> None:
    """Create the run's folder (or find it there).

    Raises:
        InvalidInputError: ``out`` is a file, or the folder cannot be made there.
    """
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} is a file; name a folder for the results (--out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(
            f"cannot make the results folder {out} ({e.strerror}); name another (--out)"
        ) from None


def _open_run(
    out: Path,
    settings: Record,
    examples: Sequence[EvalExample],
    *,
    rescore_done: bool,
) -> dict[tuple[str, str], Record]:
    """The run's folder, created or checked to hold a run with these settings, and the records
    it already holds by (example id, method), scored again first when asked."""
    make_run_folder(out)
    _check_settings(out, settings)
    stored = load_records(out / RESULTS, repair=True)
    if rescore_done and stored:
        stored = rescore(stored, examples)
        _rewrite(out / RESULTS, stored)
    return {(r["id"], r["method"]): r for r in stored}


def _run_pairs(
    session: _Session,
    todo: Sequence[tuple[EvalExample, Label]],
    results: Path,
    done: dict[tuple[str, str], Record],
    *,
    progress: bool | OnProgress,
) -> None:
    """Run each pair and append its record, flushed to disk before the next pair starts."""
    with results.open("a", encoding="utf-8") as sink, _progress(progress, len(todo)) as step:
        for example, label in todo:
            record = _run_one(session, example, label)
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            done[(example.id, label[0])] = record
            step()


def rescore(
    records: Sequence[Mapping[str, Any]],
    examples: Sequence[EvalExample],
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> list[Record]:
    """The records with every quality metric (:func:`score`) computed again from their text,
    by the current definitions; records of examples not in ``examples`` are kept as they are.

    This is how answers written before a metric existed, or before its definition changed, are
    measured by it.
    """
    by_id = {e.id: e for e in examples}
    out: list[Record] = []
    for record in records:
        example = by_id.get(str(record["id"]))
        if example is None:
            out.append(dict(record))
            continue
        metrics = score(str(record.get("text", "")), example, system_prompt=system_prompt)
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
        out.append({**record, **rounded})
    return out


def _rewrite(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``records``, one JSON line each, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as sink:
        for record in records:
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(tmp, path)


def _select(examples: Sequence[EvalExample], limit: int | None) -> list[EvalExample]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive int, not {limit!r}")
    chosen = list(examples[:limit] if limit is not None else examples)
    if not chosen:
        raise InvalidInputError("no examples to evaluate; load some with load_examples()")
    return chosen


def _base_config(
    config: GenerationConfig | None, *, max_new_tokens: int, seed: int, greedy: bool
) -> GenerationConfig:
    if config is None:
        from specsteer._defaults import DEFAULT_CONFIG

        config = DEFAULT_CONFIG
    fields = {"max_new_tokens": max_new_tokens, "seed": seed, "greedy": greedy}
    try:
        return GenerationConfig.model_validate({**config.model_dump(), **fields})
    except ValueError as e:
        raise ConfigurationError(f"invalid evaluation setting: {e}") from e


def _settings(
    device: ModelBackend,
    cloud: CloudVerifier,
    config: GenerationConfig,
    privacy: bool,
    audit_payloads: str = "digest",
) -> Record:
    backend = getattr(cloud, "backend", None)
    return {
        **_FORMAT,
        "device": device.name,
        "device_runtime": device.runtime,
        "cloud": backend.name if isinstance(backend, ModelBackend) else cloud.destination,
        "config": config.model_dump(exclude={"method", "lam"}),
        "privacy": privacy,
        **({"audit_payloads": audit_payloads} if audit_payloads != "digest" else {}),
    }


def _check_settings(out: Path, settings: Record) -> None:
    """Record the run's settings; a resumed run must use the same ones."""
    path = out / SETTINGS
    if not path.exists():
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read {path} ({e}); remove it or use a new out_dir") from e
    if stored != json.loads(json.dumps(settings)):
        changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
        raise ConfigurationError(
            f"{out} holds a run with other settings ({', '.join(changed)} differ); resume it "
            "with the same models and settings, or pass another output folder"
        )


def load_records(path: str | os.PathLike[str], *, repair: bool = False) -> list[Record]:
    """The records in a ``results.jsonl`` ([] when there is none).

    A line cut short by a crash (the last one, without its newline) is dropped; with
    ``repair=True`` it is also cut from the file, so later appends start on a fresh line.
    Other lines that are not JSON objects are skipped with a warning.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if repair and whole != data:
        logger.warning("eval: dropping an unfinished last line of %s", p)
        with p.open("r+b") as f:
            f.truncate(len(whole))
    records: list[Record] = []
    for lineno, line in enumerate(whole.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "id" in record and "method" in record:
            records.append(record)
        else:
            logger.warning("eval: skipping unreadable line %d of %s", lineno, p)
    return records


@contextlib.contextmanager
def _progress(progress: bool | OnProgress, total: int) -> Iterator[Callable[[], None]]:
    """A step to call once per finished pair: ``progress(done, total)`` when it is a callable,
    a rich progress bar on stderr when it is True and stderr a terminal, else nothing."""
    if callable(progress):
        done = itertools.count(1)
        yield lambda: progress(next(done), total)
        return
    if not (progress and sys.stderr.isatty()):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("evaluating", total=total)
        yield lambda: bar.advance(task)


# -- the summary ---------------------------------------------------------------------------------

#: Failures counted per answer, reported as flagged / answers it applies to.
_RATES: Final = (
    ("self_address", "self-address"),
    ("placeholder", "placeholder"),
    ("wrong_recipient", "wrong recipient"),
    ("refusal", "refusal"),
    ("restates", "restates the request"),
    ("owner_swap", "user's things the reader's"),
    ("reads_notes", "notes read out"),
    ("speaks_of_reader", "reader as someone else"),
)

_COLUMNS: Final = (
    ("rouge1", "ROUGE-1", 3),
    ("rougeL", "ROUGE-L", 3),
    ("fact_recall", "fact recall", 3),
    ("words", "words", 1),
    ("repetitive", "repetitive", 2),
    ("echo", "echo", 2),
    ("tokens_per_second", "tok/s", 2),
    ("acceptance_rate", "acceptance", 2),
)


def _mean_se(values: Iterable[float | int | bool | None]) -> tuple[float, float, int] | None:
    """Mean, standard error (sample sd / sqrt(n); 0 for one value) and n, None-s left out."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0
    return statistics.fmean(xs), se, len(xs)


def _cell(stat: tuple[float, float, int] | None, digits: int, *, signed: bool = False) -> str:
    if stat is None:
        return "—"
    sign = "+" if signed else ""
    mean = round(stat[0], digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{mean:{sign}.{digits}f} ± {stat[1]:.{digits}f}"


def _order(labels: Iterable[str]) -> list[str]:
    def key(label: str) -> tuple[int, float, float, str]:
        base, _, rest = label.partition("@")
        lam, _, tau = rest.partition("/tau")
        rank = METHODS.index(base) if base in METHODS else len(METHODS)
        try:
            return rank, float(lam or 0), float(tau or math.inf), label
        except ValueError:
            return rank, 0.0, math.inf, label

    return sorted(set(labels), key=key)


def summarize(records: Sequence[Mapping[str, Any]]) -> str:
    """A markdown report: per method mean ± standard error of every metric, and SpecSteer's
    paired differences against the cloud alone and the device alone on the same examples.

    Shares (repetitive, echo) are the fraction of answers flagged; acceptance counts only
    answers that drafted; fact recall only examples with facts. A second table counts the
    failures of :data:`_RATES` as flagged / answers the metric applies to (self-address: examples
    that name the user; wrong recipient: requests that name someone).
    """
    by_method: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in records:
        by_method.setdefault(str(r["method"]), {})[str(r["id"])] = r
    labels = _order(by_method)
    lines = [
        "| method | n | " + " | ".join(title for _, title, _ in _COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(_COLUMNS),
    ]
    for label in labels:
        rows = list(by_method[label].values())
        cells = [_cell(_mean_se(r.get(key) for r in rows), d) for key, _, d in _COLUMNS]
        lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", *_rates(by_method, labels), "", *_paired(by_method, labels)]
    return "\n".join(lines) + "\n"


def _rates(
    by_method: Mapping[str, Mapping[str, Mapping[str, Any]]], labels: Sequence[str]
) -> list[str]:
    """Rows of flagged / applicable answers (and the share) for each failure of :data:`_RATES`."""
    lines = [
        "| method | " + " | ".join(title for _, title in _RATES) + " |",
        "|---|" + "---:|" * len(_RATES),
    ]
    for label in labels:
        rows = list(by_method[label].values())
        cells = []
        for key, _ in _RATES:
            values = [bool(r[key]) for r in rows if r.get(key) is not None]
            share = f" ({100 * sum(values) / len(values):.1f}%)" if values else ""
            cells.append(f"{sum(values)}/{len(values)}{share}" if values else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _paired(
    by_method: Mapping[str, Mapping[str, Mapping[str, Any]]], labels: Sequence[str]
) -> list[str]:
    """Rows of SpecSteer minus each baseline, over the examples both answered."""
    ours = [lab for lab in labels if lab.startswith("specsteer")]
    bases = [b for b in ("cloud_only", "device_only") if b in by_method]
    if not ours or not bases:
        return ["No paired differences: run specsteer with cloud_only or device_only."]
    lines = [
        "Paired differences (SpecSteer minus baseline, same examples), mean ± standard error:",
        "",
        "| comparison | n | Δ ROUGE-L | Δ fact recall |",
        "|---|---:|---:|---:|",
    ]
    for lab in ours:
        for base in bases:
            shared = sorted(set(by_method[lab]) & set(by_method[base]))
            cells = [
                _cell(
                    _mean_se(_diff(by_method[lab][i], by_method[base][i], key) for i in shared),
                    3,
                    signed=True,
                )
                for key in ("rougeL", "fact_recall")
            ]
            lines.append(f"| {lab} − {base} | {len(shared)} | " + " | ".join(cells) + " |")
    return lines


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> float | None:
    x, y = a.get(key), b.get(key)
    return None if x is None or y is None else float(x) - float(y)
