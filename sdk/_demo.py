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
from specsteer._models import load_gemma3_270m, load_smollm2
from specsteer.backends._base import ModelBackend

__all__ = ["DEMO_HISTORY", "DEMO_REQUESTS", "default_assistant", "run_demo"]

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


def default_models(progress: bool = True) -> tuple[ModelBackend, ModelBackend]:
    """Load the embedded default pair: SmolLM2-135M-Instruct (device), Gemma 3 270M (cloud)."""
    device = _load(progress, "loading the device model (SmolLM2-135M-Instruct)", load_smollm2)
    cloud = _load(progress, "loading the cloud model (Gemma 3 270M)", load_gemma3_270m)
    return device, cloud


def default_assistant(
    progress: bool = True, user_id: str | None = None, memory: MemoryStore | None = None
) -> Assistant:
    """An assistant over the embedded default pair, the cloud model in this process.

    The two models have different tokenizers, so drafts travel as text (cross-vocabulary mode).

    Args:
        progress: show a spinner while models load.
        user_id: use this user's memories from the store under ``$SPECSTEER_HOME``.
        memory: the store to use (default: opened under ``$SPECSTEER_HOME`` when ``user_id``
            is given).
    """
    device, cloud = default_models(progress)
    if user_id is not None and memory is None:
        from specsteer.memory import MemoryStore

        memory = _load(progress, "opening the encrypted memory store", MemoryStore)
    return Assistant.in_process(
        device, cloud, memory=memory, user_id=user_id, config=DEFAULT_CONFIG
    )


#: Generation settings for the embedded pair. Gemma 3 270M is a small pretrained (not
#: instruction-tuned) model: a lower threshold lets more of the device's personal drafts through.
DEFAULT_CONFIG = GenerationConfig(lam=0.02, max_new_tokens=96)

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
        f"drafts travel as {assistant.decoder.wire}[/]"
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
        n_lines = len([line for line in context.splitlines() if line.strip()])
        kept.add_row("private context", f"{n_lines} memories, {len(context)} characters")
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
