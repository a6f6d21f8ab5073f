"""What the gateway costs: the same request answered in process and through the gateway.

Each repeat answers one request three ways, in turn: ``Assistant.generate`` in this process, a
whole completion from the gateway, and a streamed one (server-sent events read to ``[DONE]``).
The gateway runs in a thread of this process on loopback, over real HTTP; every answer has the
same length (``ignore_eos``) and the same seed. Tokens/s is the answer's tokens over the wall
clock the caller waited; the report gives each way's median and its ratio to in process.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from specsteer._assistant import Assistant
from specsteer.apps.gateway._app import create_gateway

__all__ = ["BENCH_NOTES", "GatewayBench", "render_gateway_bench", "run_gateway_bench"]

#: The bench user's private notes (the request retrieves them, in process and through the gateway).
BENCH_NOTES = (
    "My sister Lena lives in Lisbon; her birthday is on March 14 and she loves jazz.",
    "I am vegetarian and allergic to peanuts.",
    "I run 10 km on Saturday mornings before breakfast.",
)
BENCH_PROMPT = "Plan my Saturday morning."


@dataclass(frozen=True)
class GatewayBench:
    """Seconds per answer, each way, over the repeats."""

    models: str
    tokens: int
    in_process_s: tuple[float, ...]
    gateway_s: tuple[float, ...]
    streamed_s: tuple[float, ...]

    def rate(self, seconds: tuple[float, ...]) -> float:
        """Tokens per second at the median time."""
        return self.tokens / statistics.median(seconds)

    def ratio(self, seconds: tuple[float, ...]) -> float:
        """A way's tokens/s over in process's."""
        return self.rate(seconds) / self.rate(self.in_process_s)


def run_gateway_bench(
    assistant: Assistant,
    *,
    models: str,
    max_new_tokens: int = 64,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> GatewayBench:
    """Time one request in process and through the gateway (see the module).

    Args:
        assistant: with a memory store and ``user_id`` (its user's memories are retrieved);
            build it without a privacy layer so the run leaves nothing in the audit log.
        models: what runs where, for the report.
        max_new_tokens: tokens in each answer.
        repeats: answers each way (after one warm-up in process).
        progress: told what runs.
    """
    say = progress or (lambda _msg: None)
    chat = [{"role": "user", "content": BENCH_PROMPT}]
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "ignore_eos": True, "seed": 0}
    body = {"model": "specsteer", "messages": chat, "max_tokens": max_new_tokens}
    body |= {"ignore_eos": True, "seed": 0, "user": assistant.user_id}
    from specsteer.cloud_adapter import BackgroundServer

    server = BackgroundServer(create_gateway(assistant)).start()
    times: dict[str, list[float]] = {"in_process": [], "gateway": [], "streamed": []}
    try:
        with httpx.Client(base_url=server.url + "/v1", timeout=600) as client:
            say("warm-up (in process)")
            assistant.generate(chat, **settings)
            for r in range(repeats):
                say(f"repeat {r + 1}/{repeats}: in process, gateway, streamed")
                times["in_process"].append(_timed(lambda: assistant.generate(chat, **settings)))
                times["gateway"].append(_timed(lambda: _whole(client, body)))
                times["streamed"].append(_timed(lambda: _streamed(client, body)))
    finally:
        server.stop()
    return GatewayBench(
        models,
        max_new_tokens,
        tuple(times["in_process"]),
        tuple(times["gateway"]),
        tuple(times["streamed"]),
    )


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _whole(client: httpx.Client, body: dict[str, Any]) -> None:
    reply = client.post("/chat/completions", json=body)
    reply.raise_for_status()
    assert reply.json()["usage"]["completion_tokens"] == body["max_tokens"]


def _streamed(client: httpx.Client, body: dict[str, Any]) -> None:
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as reply:
        reply.raise_for_status()
        last = ""
        for line in reply.iter_lines():
            last = line or last
    assert last == "data: [DONE]", json.dumps(last)


def render_gateway_bench(bench: GatewayBench, command: str) -> str:
    """The results as a markdown section."""
    rows = [
        ("in process (`Assistant.generate`)", bench.in_process_s),
        ("gateway, whole completion", bench.gateway_s),
        ("gateway, streamed (SSE)", bench.streamed_s),
    ]
    lines = [
        "# Gateway overhead",
        "",
        f"Produced by `{command}`: {bench.models}; one request ({bench.tokens} tokens, "
        f"greedy, same seed) answered {len(bench.in_process_s)} times each way, in turn.",
        "",
        "| way | tokens/s (median) | vs in process | seconds per answer |",
        "|---|---:|---:|---|",
    ]
    for name, seconds in rows:
        each = ", ".join(f"{s:.2f}" for s in seconds)
        lines.append(
            f"| {name} | {bench.rate(seconds):.2f} | {bench.ratio(seconds):.1%} | {each} |"
        )
    return "\n".join(lines) + "\n"
