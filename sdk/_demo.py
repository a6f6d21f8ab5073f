"""The embedded demo: a demo user's private history, a few personal requests, what left the device."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from specsteer._assistant import Assistant
from specsteer._models import load_gemma3_270m, load_smollm2
from specsteer.backends._base import ModelBackend

__all__ = ["DEMO_HISTORY", "DEMO_REQUESTS", "default_assistant", "run_demo"]

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
    "Suggest a dinner I could cook tonight.",
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


def default_assistant(progress: bool = True, user_id: str | None = None) -> Assistant:
    """An assistant over the embedded default pair, the cloud model in this process.

    Args:
        progress: show a spinner while models load.
        user_id: use this user's memories from the store under ``$SPECSTEER_HOME``.
    """
    device, cloud = default_models(progress)
    memory = None
    if user_id is not None:
        from specsteer.memory import MemoryStore

        memory = _load(progress, "opening the memory store", MemoryStore)
    return Assistant.in_process(device, cloud, memory=memory, user_id=user_id)


def run_demo(console: Console, *, max_new_tokens: int = 64) -> None:
    """Answer :data:`DEMO_REQUESTS` for the demo user and print text, egress and speed."""
    t0 = time.perf_counter()
    assistant = default_assistant(progress=True)
    console.print(f"[dim]models ready in {time.perf_counter() - t0:.1f} s[/]")
    context = "\n".join(f"- {line}" for line in DEMO_HISTORY)
    for request in DEMO_REQUESTS:
        result = assistant.generate(request, context=context, max_new_tokens=max_new_tokens)
        s = result.stats
        console.print(Panel(result.text or "(empty)", title=f"[bold]{request}[/]", expand=False))
        table = Table(show_header=True, header_style="bold")
        for col in ("tokens", "tok/s", "accepted", "rounds", "sent", "received"):
            table.add_column(col, justify="right")
        table.add_row(
            str(s.new_tokens),
            f"{s.tokens_per_second:.1f}",
            f"{s.acceptance_rate:.0%}",
            str(len(s.rounds)),
            f"{s.bytes_sent} B",
            f"{s.bytes_received} B",
        )
        console.print(table)
