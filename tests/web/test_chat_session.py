"""The chat session while an answer runs: a client that leaves, and forgetting the chat.

A :class:`Gate` halts each generation after its first tokens until the test opens it, so every
step happens while the answer is known to be running (no sleeps, no timing).
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from specsteer import Finished, RoundEvent, Tokens

#: Bounds a wait that ends at once when the code is right; reaching it fails the test.
DEADLOCK_S = 120
BUSY = "an answer is still being written; wait for it"

Chat = list[dict[str, str]]


@dataclass
class Run:
    """One generation as the gate saw it."""

    chat: Chat
    after_halt: int = 0  # events the generation produced once the gate let it go on
    finished: bool = False
    ended: threading.Event = field(default_factory=threading.Event)


class Gate:
    """Wraps ``Assistant.stream``: a generation halts after its first tokens (and says so in
    :attr:`halted`) until :attr:`open` is set; each one is recorded as a :class:`Run`."""

    def __init__(self, stream: Callable[..., Iterator[RoundEvent]]) -> None:
        self._stream = stream
        self.halted = threading.Event()
        self.open = threading.Event()
        self.runs: list[Run] = []

    def __call__(self, chat: Chat, **kwargs: Any) -> Iterator[RoundEvent]:
        run = Run(list(chat))
        self.runs.append(run)
        return self._events(run, self._stream(chat, **kwargs))

    def _events(self, run: Run, events: Iterator[RoundEvent]) -> Iterator[RoundEvent]:
        halted = False
        try:
            for event in events:
                run.after_halt += halted
                run.finished = isinstance(event, Finished)
                yield event
                if isinstance(event, Tokens) and not halted:
                    self.halted.set()
                    halted = self.open.wait(DEADLOCK_S)
        finally:
            events.close()  # type: ignore[attr-defined]
            run.ended.set()


@pytest.fixture
def gated() -> Iterator[tuple[Any, Gate]]:
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.apps.web import ChatSession

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya")
    gate = Gate(assistant.stream)
    assistant.stream = gate  # type: ignore[method-assign]
    session = ChatSession(assistant, "tiny")
    yield session, gate
    gate.open.set()  # a failed test leaves no generation halted
    session.wait(DEADLOCK_S)


def _seqs(log: Any) -> list[int]:
    return [int(r["seq"]) for r in log.records()]


def _listed(events: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for e in events if e["type"] == "egress" for r in e["records"]]


def _assert_ends_early_and_holds_the_session(session: Any, gate: Gate) -> None:
    """The given-up answer still runs (halted): a new chat is refused until it has ended, at
    its next round, without finishing."""
    assert list(session.ask("again", max_new_tokens=4, method="specsteer")) == [
        {"type": "error", "message": BUSY}
    ]
    gate.open.set()
    assert session.wait(DEADLOCK_S)
    (run,) = gate.runs
    assert run.ended.is_set() and not run.finished
    assert run.after_halt <= 1


def _assert_next_answer_lists_its_own_egress(session: Any) -> None:
    log = session.audit_log
    before = max(_seqs(log))
    events = list(session.ask("and now?", max_new_tokens=16, method="specsteer"))
    assert events[-1]["type"] == "done"
    listed = _listed(events)
    assert listed and listed == [s for s in _seqs(log) if s > before]
    assert events[-1]["privacy"]["audit_seqs"] == listed


def test_a_closed_answer_ends_at_its_next_round_and_holds_the_session(gated: Any) -> None:
    session, gate = gated
    answer = session.ask("tell me a long story", max_new_tokens=512, method="specsteer")
    assert gate.halted.wait(DEADLOCK_S)  # the answer runs
    answer.close()
    assert list(answer) == []  # nobody reads a given-up answer
    _assert_ends_early_and_holds_the_session(session, gate)
    _assert_next_answer_lists_its_own_egress(session)


def test_an_answer_nobody_holds_is_given_up(gated: Any) -> None:
    session, gate = gated
    answer = session.ask("tell me a long story", max_new_tokens=512, method="specsteer")
    assert gate.halted.wait(DEADLOCK_S)  # the answer runs; its reader never started
    del answer
    gc.collect()
    _assert_ends_early_and_holds_the_session(session, gate)


def _leave_mid_answer(app: Any, body: dict[str, Any], running: threading.Event) -> list[Any]:
    """POST /api/chat over ASGI; the client disconnects once ``running`` is set. The lines it
    got."""
    lines: list[dict[str, Any]] = []
    request = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        assert await asyncio.to_thread(running.wait, DEADLOCK_S)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            lines.extend(json.loads(x) for x in message.get("body", b"").splitlines())

    async def scenario() -> None:
        await app(scope, receive, send)

    asyncio.run(scenario())
    return lines


def test_a_client_that_leaves_ends_its_answer(gated: Any) -> None:
    from specsteer.apps.web import Access, create_app

    session, gate = gated
    app = create_app(session, access=Access(hosts={"testserver"}))
    body = {"message": "tell me a long story", "max_new_tokens": 512}
    lines = _leave_mid_answer(app, body, gate.halted)
    assert "done" not in [e["type"] for e in lines]
    _assert_ends_early_and_holds_the_session(session, gate)
    _assert_next_answer_lists_its_own_egress(session)


@pytest.mark.parametrize("clear", ["forget", "edit", "delete"])
def test_forgetting_during_an_answer_wins(gated: Any, clear: str) -> None:
    from specsteer.apps.web import Access, create_app

    session, gate = gated
    client = TestClient(create_app(session, access=Access(hosts={"testserver"})))
    memory = client.post("/api/memories", json={"text": "i love pizza"}).json()["id"]
    events = iter(session.ask("what do i love?", max_new_tokens=4, method="specsteer"))
    assert gate.halted.wait(DEADLOCK_S)  # the answer runs
    if clear == "forget":
        reply = client.post("/api/forget", json={"user": "maya"})
    elif clear == "edit":
        reply = client.put(f"/api/memories/{memory}", json={"text": "i love pasta"})
    else:
        reply = client.delete(f"/api/memories/{memory}")
    assert reply.json()["history_cleared"] is True
    gate.open.set()
    assert [e["type"] for e in events][-1] == "done"  # the page still gets the answer
    assert session.history == []
    assert list(session.ask("and then?", max_new_tokens=2, method="specsteer"))[-1]["type"] == (
        "done"
    )
    assert gate.runs[-1].chat == [{"role": "user", "content": "and then?"}]
