"""The embedded demo: a demo user's private history, a few personal requests, what left the device."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from specsteer._defaults import default_assistant, load_with_progress

if TYPE_CHECKING:
    from specsteer import Assistant, GenerationResult
    from specsteer._private_context import PrivateContext
    from specsteer.memory import MemoryStore

__all__ = ["DEMO_HISTORY", "DEMO_REQUESTS", "answer_requests", "prepare_demo_memory", "run_demo"]

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


DEMO_USER = "demo-maya"


def run_demo(console: Console, *, max_new_tokens: int = 64) -> None:
    """Answer :data:`DEMO_REQUESTS` for the demo user and print text, egress and speed."""
    from specsteer.memory import MemoryStore

    t0 = time.perf_counter()
    memory = load_with_progress(True, "opening the encrypted memory store", MemoryStore)
    prepare_demo_memory(memory)
    assistant = default_assistant(progress=True, user_id=DEMO_USER, memory=memory)
    console.print(
        f"[dim]models and memory ready in {time.perf_counter() - t0:.1f} s; "
        f"{memory.count(DEMO_USER)} private memories of {DEMO_USER!r}, encrypted on this device; "
        f"drafts travel as {assistant.decoder.wire}; {assistant.decoder.runtimes}[/]"
    )
    answer_requests(console, assistant, max_new_tokens=max_new_tokens, started=t0)


def prepare_demo_memory(memory: MemoryStore) -> None:
    """Store the demo user's history; the demo's own user starts afresh if it was forgotten."""
    if memory.keyring.is_forgotten(DEMO_USER):
        memory.reinstate_user(DEMO_USER)
    if memory.count(DEMO_USER) < len(DEMO_HISTORY):
        memory.add_many(DEMO_USER, list(DEMO_HISTORY))


def answer_requests(
    console: Console,
    assistant: Assistant,
    *,
    max_new_tokens: int = 64,
    requests: Sequence[str] = DEMO_REQUESTS,
    started: float | None = None,
) -> None:
    """Answer ``requests`` with the assistant's private context and print, for each, the text,
    what stayed on the device, what left it and the speed; then the audit log's verdict and
    the speed over all of them."""
    t0 = time.perf_counter() if started is None else started
    total_tokens, total_s = 0, 0.0
    for request in requests:
        context = assistant.private_context(request)
        result = assistant.generate(request, context=context, max_new_tokens=max_new_tokens)
        total_tokens += result.stats.new_tokens
        total_s += result.stats.wall_seconds
        cut = (
            f"[dim]cut at {max_new_tokens} tokens[/]" if result.finish_reason == "length" else None
        )
        console.print(
            Panel(
                result.text or "(empty)",
                title=f"[bold]{request}[/]",
                subtitle=cut,
                expand=False,
            )
        )
        console.print(_kept(context, result), _left(result), _speed(result))
    if assistant.egress is not None:
        log = assistant.egress.guard.audit_log
        console.print(f"audit log {log.path}: " + log.verify().summary(), markup=False)
    console.print(
        f"[bold]{total_tokens} tokens in {total_s:.1f} s "
        f"({total_tokens / max(total_s, 1e-9):.1f} tokens/s); "
        f"whole demo {time.perf_counter() - t0:.0f} s[/]"
    )


def _table(title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="cyan")
    table.add_column("value")
    return table


def _kept(context: PrivateContext, result: GenerationResult) -> Table:
    """What stayed on the device: the private context and the spans the guard kept."""
    kept = _table("kept on the device")
    kept.add_row(
        "private context", f"{len(context.memories)} memories, {len(context.render())} characters"
    )
    if context.writer:
        to = ", ".join(f"{p.name} ({p.relation})" for p in context.recipients)
        kept.add_row("written as", context.writer + (f", to {to}" if to else ""))
    if result.privacy is not None:
        kept.add_row("spans kept local", str(result.privacy.spans_kept_local))
        kept.add_row("spans pseudonymized", str(result.privacy.spans_pseudonymized))
    return kept


def _left(result: GenerationResult) -> Table:
    """What left the device: the payloads, their audit records and their fields."""
    left = _table("left the device")
    p = result.privacy
    if p is not None:
        left.add_row(
            "payloads",
            f"{p.payloads} ({p.bytes_sent} bytes), audited as records {_span(p.audit_seqs)}",
        )
        top = sorted({f.split(".")[0].split("[")[0] for f in p.fields_sent})
        left.add_row("fields", ", ".join(top) or "-")
        left.add_row("refused by the guard", str(p.payloads_refused))
    return left


def _speed(result: GenerationResult) -> Table:
    s = result.stats
    speed = Table(title="speed", show_header=True, header_style="bold", title_justify="left")
    columns = ("tokens", "tok/s", "drafts accepted", "rounds", "cloud calls", "device s", "cloud s")
    for col in columns:
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
    return speed


def _span(seqs: list[int]) -> str:
    if not seqs:
        return "-"
    return f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0])
