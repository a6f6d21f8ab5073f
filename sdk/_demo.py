"""The embedded demo: a demo user's private history, a few personal requests, what left the device."""

from __future__ import annotations

import time

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from specsteer._defaults import default_assistant, load_with_progress

__all__ = ["DEMO_HISTORY", "DEMO_REQUESTS", "run_demo"]

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
        context = assistant.private_context(request)
        result = assistant.generate(request, context=context, max_new_tokens=max_new_tokens)
        s = result.stats
        total_tokens += s.new_tokens
        total_s += s.wall_seconds
        console.print(Panel(result.text or "(empty)", title=f"[bold]{request}[/]", expand=False))
        kept = Table(title="kept on the device", show_header=False, title_justify="left")
        kept.add_column("what", style="cyan")
        kept.add_column("value")
        kept.add_row(
            "private context",
            f"{len(context.memories)} memories, {len(context.render())} characters",
        )
        if context.writer:
            to = ", ".join(f"{p.name} ({p.relation})" for p in context.recipients)
            kept.add_row("written as", context.writer + (f", to {to}" if to else ""))
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
