"""The embedded demo: a demo user's private history, a few personal requests, what left the device."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from specsteer._assistant import Assistant
from specsteer._config import GenerationConfig
from specsteer._errors import ConfigurationError
from specsteer._models import load_device_qwen_coder_0_5b, load_qwen_coder_1_5b, load_smollm2
from specsteer.backends._base import ModelBackend

__all__ = [
    "DEMO_HISTORY",
    "DEMO_REQUESTS",
    "PAIRS",
    "default_assistant",
    "default_models",
    "run_demo",
]

if TYPE_CHECKING:
    from specsteer.memory import MemoryStore

T = TypeVar("T")

#: The demo user's private history: it lives on the device only.
DEMO_HISTORY: tuple[str, ...] = (
    "My name is Maya Okafor and I live in Rotterdam.",
    "I am vegetarian and allergic to peanuts.",
    "My sister Lena lives in Lisbon; her birthday is on March 14 and she loves jazz.",
    "I am training for the Rotterdam marathon in April; long runs are on Saturday mornings.",
    "I have a dentist appointment on Tuesday at 3 pm with Dr. Visser.",
    "My favourite dish is mushroom risotto; I cook most evenings after 7 pm.",
    "I work as a nurse and have night shifts on Thursdays.",
)

#: Personal requests the demo answers.
DEMO_REQUESTS: tuple[str, ...] = (
    "What could I cook for dinner tonight?",
    "Write a short birthday message for my sister.",
    "Plan my Saturday morning.",
)


def _load(progress: bool, label: str, fn: Callable[[], T]) -> T:
    if not progress:
        return fn()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as bar:
        bar.add_task(label, total=None)
        return fn()


#: The embedded pairs by name: (device label, device loader, cloud label, cloud loader).
PAIRS: dict[str, tuple[str, Callable[[], ModelBackend], str, Callable[[], ModelBackend]]] = {
    # Different tokenizers: drafts travel as text (cross-vocabulary mode).
    "smollm2-qwen1.5b": (
        "SmolLM2-135M-Instruct",
        load_smollm2,
        "Qwen2.5-Coder-1.5B-Instruct",
        load_qwen_coder_1_5b,
    ),
    # One tokenizer: token-id mode, the paper's own setting (a larger, slower drafter).
    "qwen0.5b-qwen1.5b": (
        "Qwen2.5-Coder-0.5B-Instruct",
        load_device_qwen_coder_0_5b,
        "Qwen2.5-Coder-1.5B-Instruct",
        load_qwen_coder_1_5b,
    ),
}
#: Chosen by ``specsteer eval`` on the shipped personal-writing set (docs/evaluation.md): the
#: 135M SmolLM2 drafter rarely writes the user's facts, the 0.5B Qwen drafter does.
DEFAULT_PAIR = "qwen0.5b-qwen1.5b"


def default_models(
    progress: bool = True, pair: str = DEFAULT_PAIR
) -> tuple[ModelBackend, ModelBackend]:
    """Load an embedded pair (default: Qwen2.5-Coder-0.5B-Instruct on the device,
    Qwen2.5-Coder-1.5B-Instruct in the cloud; see :data:`PAIRS`).

    Raises:
        ConfigurationError: an unknown pair name.
    """
    if pair not in PAIRS:
        raise ConfigurationError(f"unknown pair {pair!r}; choose one of: {', '.join(PAIRS)}")
    device_label, load_device, cloud_label, load_cloud = PAIRS[pair]
    device = _load(progress, f"loading the device model ({device_label})", load_device)
    cloud = _load(progress, f"loading the cloud model ({cloud_label})", load_cloud)
    return device, cloud


def default_assistant(
    progress: bool = True,
    user_id: str | None = None,
    memory: MemoryStore | None = None,
    pair: str = DEFAULT_PAIR,
) -> Assistant:
    """An assistant over an embedded pair, the cloud model in this process.

    The default pair shares one tokenizer, so drafts travel as token ids; with
    ``pair="smollm2-qwen1.5b"`` the tokenizers differ and drafts travel as text
    (cross-vocabulary mode).

    Args:
        progress: show a spinner while models load.
        user_id: use this user's memories from the store under ``$SPECSTEER_HOME``.
        memory: the store to use (default: opened under ``$SPECSTEER_HOME`` when ``user_id``
            is given).
        pair: which of :data:`PAIRS`.
    """
    device, cloud = default_models(progress, pair)
    if user_id is not None and memory is None:
        from specsteer.memory import MemoryStore

        memory = _load(progress, "opening the encrypted memory store", MemoryStore)
    return Assistant.in_process(
        device, cloud, memory=memory, user_id=user_id, config=DEFAULT_CONFIG
    )


#: Generation settings for the embedded pairs, chosen by ``specsteer eval`` on the shipped set
#: (docs/evaluation.md): a threshold that lets the device's personal drafts through, a stronger
#: private steer over a wider recovery support (so a name the cloud ranks 40th can still win), and
#: repetition control on both sides so answers do not loop.
DEFAULT_CONFIG = GenerationConfig(
    lam=0.1,
    beta=2.0,
    top_k=100,
    repetition_penalty=1.1,
    no_repeat_ngram_size=4,
    max_new_tokens=96,
)

DEMO_USER = "demo-maya"


def run_demo(console: Console, *, max_new_tokens: int = 64) -> None:
    """Answer :data:`DEMO_REQUESTS` for the demo user and print text, egress and speed."""
    from specsteer.memory import MemoryStore

    t0 = time.perf_counter()
    memory = _load(True, "opening the encrypted memory store", MemoryStore)
    if memory.count(DEMO_USER) < len(DEMO_HISTORY):
        memory.add_many(DEMO_USER, list(DEMO_HISTORY))
    assistant = default_assistant(progress=True, user_id=DEMO_USER, memory=memory)
    console.print(
        f"[dim]models and memory ready in {time.perf_counter() - t0:.1f} s; "
        f"{memory.count(DEMO_USER)} private memories of {DEMO_USER!r}, encrypted on this device; "
        f"drafts travel as {assistant.decoder.wire}; {assistant.decoder.runtimes}[/]"
    )
    total_tokens, total_s = 0, 0.0
    for request in DEMO_REQUESTS:
        context = assistant.retrieve(request)
        result = assistant.generate(request, context=context, max_new_tokens=max_new_tokens)
        s = result.stats
        total_tokens += s.new_tokens
        total_s += s.wall_seconds
        console.print(Panel(result.text or "(empty)", title=f"[bold]{request}[/]", expand=False))
        kept = Table(title="kept on the device", show_header=False, title_justify="left")
        kept.add_column("what", style="cyan")
        kept.add_column("value")
        n_items = len([line for line in context.splitlines() if line.startswith("- ")])
        kept.add_row("private context", f"{n_items} memories, {len(context)} characters")
        p = result.privacy
        left = Table(title="left the device", show_header=False, title_justify="left")
        left.add_column("what", style="cyan")
        left.add_column("value")
        if p is not None:
            kept.add_row("spans kept local", str(p.spans_kept_local))
            kept.add_row("spans pseudonymized", str(p.spans_pseudonymized))
            left.add_row(
                "payloads",
                f"{p.payloads} ({p.bytes_sent} bytes), audited as records {_span(p.audit_seqs)}",
            )
            top = sorted({f.split(".")[0].split("[")[0] for f in p.fields_sent})
            left.add_row("fields", ", ".join(top) or "-")
            left.add_row("refused by the guard", str(p.payloads_refused))
        speed = Table(title="speed", show_header=True, header_style="bold", title_justify="left")
        for col in (
            "tokens",
            "tok/s",
            "drafts accepted",
            "rounds",
            "cloud calls",
            "device s",
            "cloud s",
        ):
            speed.add_column(col, justify="right")
        speed.add_row(
            str(s.new_tokens),
            f"{s.tokens_per_second:.1f}",
            f"{s.acceptance_rate:.0%}",
            str(len(s.rounds)),
            str(s.cloud_calls),
            f"{s.device_seconds:.1f}",
            f"{s.cloud_seconds:.1f}",
        )
        console.print(kept, left, speed)
    if assistant.egress is not None:
        log = assistant.egress.guard.audit_log
        verdict = log.verify()
        console.print(f"audit log {log.path}: " + verdict.summary(), markup=False)
    console.print(
        f"[bold]{total_tokens} tokens in {total_s:.1f} s "
        f"({total_tokens / max(total_s, 1e-9):.1f} tokens/s); "
        f"whole demo {time.perf_counter() - t0:.0f} s[/]"
    )


def _span(seqs: list[int]) -> str:
    if not seqs:
        return "-"
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])
