"""What the gateway costs: the same request answered in process and through the gateway.

Each repeat answers one request three ways, in turn: ``Assistant.generate`` in this process, a
whole completion from the gateway, and a streamed one (server-sent events read to ``[DONE]``).
The gateway runs in a thread of this process on loopback, over real HTTP; every answer has the
same length (``ignore_eos``) and the same seed. Tokens/s is the answer's tokens over the wall
clock the caller waited; CPU seconds are this process's (models, gateway and client all run in
it), which other work on a shared machine disturbs less than the wall clock. The report gives
each way's medians and their ratios to in process.
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

__all__ = ["BENCH_NOTES", "WAYS", "GatewayBench", "render_gateway_bench", "run_gateway_bench"]

#: The bench user's private notes (the request retrieves them, in process and through the gateway).
BENCH_NOTES = (
    "My sister Lena lives in Lisbon; her birthday is on March 14 and she loves jazz.",
    "I am vegetarian and allergic to peanuts.",
    "I run 10 km on Saturday mornings before breakfast.",
)
BENCH_PROMPT = "Plan my Saturday morning."


#: The ways an answer is asked for, in the order each repeat runs them.
WAYS = ("in process (`Assistant.generate`)", "gateway, whole completion", "gateway, streamed (SSE)")


@dataclass(frozen=True)
class GatewayBench:
    """Wall-clock and CPU seconds per answer, each way (as in :data:`WAYS`), over the repeats."""

    models: str
    tokens: int
    wall_s: tuple[tuple[float, ...], ...]
    cpu_s: tuple[tuple[float, ...], ...]

    def rate(self, way: int) -> float:
        """Tokens per second of wall clock at the median time."""
        return self.tokens / statistics.median(self.wall_s[way])

    def cpu(self, way: int) -> float:
        """Median CPU seconds per answer."""
        return statistics.median(self.cpu_s[way])


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
    times: list[list[tuple[float, float]]] = [[] for _ in WAYS]
    try:
        with httpx.Client(base_url=server.url + "/v1", timeout=600) as client:
            ways: list[Callable[[], object]] = [
                lambda: assistant.generate(chat, **settings),
                lambda: _whole(client, body),
                lambda: _streamed(client, body),
            ]
            say("warm-up (in process)")
            assistant.generate(chat, **settings)
            for r in range(repeats):
                say(f"repeat {r + 1}/{repeats}: in process, gateway, streamed")
                for way, ask in enumerate(ways):
                    times[way].append(_timed(ask))
    finally:
        server.stop()
    wall = tuple(tuple(w for w, _ in t) for t in times)
    cpu = tuple(tuple(c for _, c in t) for t in times)
    return GatewayBench(models, max_new_tokens, wall, cpu)


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads) of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


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
    lines = [
        "# Gateway overhead",
        "",
        f"Produced by `{command}`: {bench.models}; one request ({bench.tokens} tokens, "
        f"greedy, same seed) answered {len(bench.wall_s[0])} times each way, in turn.",
        "",
        "| way | tokens/s (median) | vs in process | CPU s per answer (median) | vs in process "
        "| wall-clock s per answer |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for way, name in enumerate(WAYS):
        each = ", ".join(f"{s:.2f}" for s in bench.wall_s[way])
        speed = bench.rate(way) / bench.rate(0)
        cpu = bench.cpu(way) / bench.cpu(0)
        lines.append(
            f"| {name} | {bench.rate(way):.2f} | {speed:.1%} | {bench.cpu(way):.2f} | "
            f"{cpu:.1%} | {each} |"
        )
    return "\n".join(lines) + "\n"
