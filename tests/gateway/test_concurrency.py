"""Several clients at once: users never see each other's memories, answers take turns, and a
client that goes away gives its place up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from .conftest import Gateway
from .echo import CANARIES

pytestmark = pytest.mark.timeout(180)


def ask(gateway: Gateway, client_no: int, user: str, rounds: int) -> list[tuple[str, str, Any]]:
    """One client: ``rounds`` questions for ``user``, streamed on odd-numbered clients."""
    client = gateway.client()
    out = []
    for n in range(rounds):
        question = f"what is my locker code ? ({user} client {client_no} question {n})"
        messages = [{"role": "user", "content": question}]
        if client_no % 2:
            chunks = list(
                client.chat.completions.create(
                    model="specsteer", messages=messages, max_tokens=8, user=user, stream=True
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            figures = next(c.specsteer for c in chunks if c.choices and c.choices[0].finish_reason)  # type: ignore[attr-defined]
        else:
            reply = client.chat.completions.create(
                model="specsteer", messages=messages, max_tokens=8, user=user
            )
            text, figures = reply.choices[0].message.content or "", reply.specsteer  # type: ignore[attr-defined]
        out.append((question, text, figures))
    return out


def test_concurrent_users_never_see_each_others_memories(gateway: Gateway) -> None:
    users = ["alice", "bob", "alice", "bob", "alice", "bob"]
    results: dict[int, list[tuple[str, str, Any]]] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            results[i] = ask(gateway, i, users[i], rounds=3)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors, errors
    assert sum(len(r) for r in results.values()) == 18

    for i, answers in results.items():
        me = users[i]
        other = next(u for u in CANARIES if u != me)
        for _question, text, figures in answers:
            assert figures["user"] == me
            assert CANARIES[me] in text  # its own memory steered it...
            assert CANARIES[other] not in text  # ...and nobody else's
    # Every prompt the device model saw, the private view with its context included.
    for prompt in gateway.device.prompts:
        for me in CANARIES:
            other = next(u for u in CANARIES if u != me)
            if f"({me} client" in prompt:
                assert CANARIES[other] not in prompt
    private_views = [p for p in gateway.device.prompts if "locker code is" in p]
    assert {me for me in CANARIES if any(CANARIES[me] in p for p in private_views)} == set(
        CANARIES
    )
    # And nothing private reached the cloud, whoever asked.
    assert gateway.cloud.received
    for wire in gateway.cloud.received:
        assert all(c.encode() not in wire for c in CANARIES.values())


def counting(backend: Any) -> list[int]:
    """Count the token positions ``backend`` computes."""
    computed = [0]
    forward = backend.forward

    def spy(ids: Sequence[int], cache: Any) -> Any:
        computed[0] += len(ids)
        return forward(ids, cache)

    backend.forward = spy
    return computed


LONG = {"max_tokens": 1500, "ignore_eos": True, "method": "device_only", "stream": True}


def first_piece(gateway: Gateway, question: str) -> tuple[Any, Any, Any]:
    """Open a stream for ``question`` and read until its first piece of text; the stream is left
    open (the caller closes it; dropping the line iterator would close the connection)."""
    client = httpx.Client(timeout=60)
    body = {"model": "specsteer", "messages": [{"role": "user", "content": question}], **LONG}
    response = client.send(
        client.build_request("POST", gateway.url + "/v1/chat/completions", json=body), stream=True
    )
    lines = response.iter_lines()
    for line in lines:
        if '"content": "' in line and '"content": ""' not in line:
            break
    return client, response, lines


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_client_that_leaves_mid_stream_frees_its_place(gateway: Gateway) -> None:
    computed = counting(gateway.device.base)
    client, response, _lines = first_piece(gateway, "tell me a long story")
    response.close()
    client.close()
    after = gateway.client().chat.completions.create(
        model="specsteer", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert after.usage is not None and after.usage.completion_tokens == 4
    # The long answer was ended within a round or two of the client leaving, far from 1500.
    assert computed[0] < 600


def test_a_client_that_leaves_while_waiting_never_runs(gateway: Gateway) -> None:
    hold, release = threading.Event(), threading.Event()
    forward = gateway.device.base.forward

    def held(ids: Sequence[int], cache: Any) -> Any:
        if hold.is_set():  # the running answer is held here until released
            release.wait(60)
        return forward(ids, cache)

    gateway.device.base.forward = held  # type: ignore[method-assign]
    first = first_piece(gateway, "the first long story")
    hold.set()
    waiting_client = httpx.Client(timeout=60)
    body = {"model": "specsteer", "messages": [{"role": "user", "content": "the waiting one"}]}
    waiting = waiting_client.send(
        waiting_client.build_request(
            "POST", gateway.url + "/v1/chat/completions", json={**body, **LONG}
        ),
        stream=True,
    )
    waiting_lines = waiting.iter_lines()
    next(waiting_lines)  # its role chunk: the request is in, its answer queued
    wait_for(lambda: any("the waiting one" in p for p in gateway.device.prompts))
    waiting.close()
    waiting_client.close()
    time.sleep(0.3)  # the gateway notices the disconnect
    release.set()
    first[1].close()
    first[0].close()
    after = gateway.client().chat.completions.create(
        model="specsteer", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert after.usage is not None and after.usage.completion_tokens == 4
    # Its prompt was encoded once, to count its tokens for usage; its answer never ran (that
    # would encode the private and the public view as well).
    assert sum("the waiting one" in p for p in gateway.device.prompts) == 1
