"""One chat on the web page: answers streamed as marked pieces, then the answer's figures.

The models are not re-entrant, so one answer runs at a time (a second request is told so). The
answer runs in a worker thread, which holds the session's lock until it has really ended; its
events, and the audit records written while it runs, come out of the :class:`ChatAnswer` that
:meth:`ChatSession.ask` returns, as they happen. A client that leaves closes its answer: the
generation ends at its next round event, as an abandoned :class:`~specsteer.AnswerStream` does.

Forgetting the chat (:meth:`ChatSession.clear_history`) starts a new generation of the history;
an answer that ran meanwhile is shown but not added to it: forgetting wins.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio

from specsteer._assistant import Assistant
from specsteer._errors import ConfigurationError, SpecSteerError
from specsteer._events import Finished, RoundEvent, close_events
from specsteer._private_context import PrivateContext
from specsteer._result import GenerationResult
from specsteer.apps.web._egress import new_records
from specsteer.apps.web._tokens import PieceMarker

__all__ = ["ChatAnswer", "ChatSession"]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Turn = list[dict[str, str]]
#: Seconds between looks at the audit log while an answer runs.
_POLL_S = 0.25
_BUSY = "an answer is still being written; wait for it"


class ChatAnswer:
    """One answer's events as they happen: ``tokens`` and ``egress``, then ``done`` or ``error``.

    Iterate it (or ``async for`` it); :meth:`close` gives it up.

    Args:
        out: where the worker puts the answer's events.
        stop: set when the answer is given up; the worker ends the generation at its next round.
        log: the audit log whose new records are relayed (None: none are).
        seen: the log's last sequence number before the answer started.
    """

    def __init__(self, out: queue.Queue[Event], stop: threading.Event, log: Any, seen: int) -> None:
        self._out = out
        self._stop = stop
        self._log = log
        self._seen = seen
        self._ready: list[Event] = []
        self._ended = False

    @classmethod
    def refused(cls, message: str) -> ChatAnswer:
        """An answer that is one ``error`` event."""
        out: queue.Queue[Event] = queue.Queue()
        out.put({"type": "error", "message": message})
        return cls(out, threading.Event(), None, 0)

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while not self._ready:
            if self._ended or self._stop.is_set():
                raise StopIteration
            self._poll()
        return self._ready.pop(0)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """The events for async code; a reader that is cancelled (its client left) closes it."""
        try:
            while True:
                # Abandoned on cancel: the thread sees the answer closed within one poll.
                event = await anyio.to_thread.run_sync(next, self, None, abandon_on_cancel=True)
                if event is None:
                    return
                yield event
        finally:
            self.close()

    def close(self) -> None:
        """Give the answer up (safe from any thread): its generation ends at its next round and
        no more events come out."""
        self._stop.set()

    def __del__(self) -> None:
        # Nobody holds the answer, so nobody reads it: a response dropped before its first line
        # (its client left at once) never started the reader that would have closed it.
        self._stop.set()

    def _poll(self) -> None:
        try:
            event: Event | None = self._out.get(timeout=_POLL_S)
        except queue.Empty:
            event = None
        if self._log is not None:
            records = new_records(self._log, after=self._seen)
            if records:
                self._seen = records[-1]["seq"]
                self._ready.append({"type": "egress", "records": records})
        if event is not None:
            self._ready.append(event)
            self._ended = event["type"] in ("done", "error")


class ChatSession:
    """The assistant behind the page and its chat history.

    Args:
        assistant: with a cloud verifier.
        label: what the page says about the models (``"tiny models, cloud in process"``).
    """

    def __init__(self, assistant: Assistant, label: str) -> None:
        if assistant.decoder.cloud is None:
            raise ConfigurationError("the web app needs an assistant with a cloud verifier")
        self.assistant = assistant
        self.label = label
        self.history: Turn = []
        #: The pieces of the last answer the context-lift policy kept on the device.
        self.lifted: list[str] = []
        self._busy = threading.Lock()  # held from ask until the answer's worker has ended
        self._history_lock = threading.Lock()
        self._generation = 0  # counts clear_history calls; a turn of an older one is dropped

    def clear_history(self) -> bool:
        """Forget the chat so far (its text no longer goes out with the next prompt), including
        the turn of an answer running now."""
        with self._history_lock:
            self.history = []
            self._generation += 1
        return True

    @property
    def audit_log(self) -> Any:
        """The log every payload is written to before it leaves (None without a privacy layer)."""
        egress = self.assistant.egress
        return egress.guard.audit_log if egress is not None else None

    def ask(self, message: str, *, max_new_tokens: int, method: str) -> ChatAnswer:
        """Start answering ``message`` on a worker thread; its events come out of the answer
        (one ``error`` event, the history unchanged, if it fails or another answer runs)."""
        if not self._busy.acquire(blocking=False):
            return ChatAnswer.refused(_BUSY)
        try:
            out: queue.Queue[Event] = queue.Queue()
            stop = threading.Event()
            log = self.audit_log
            answer = ChatAnswer(out, stop, log, _last_seq(log))
            job = functools.partial(self._answer, message, max_new_tokens, method, out, stop)
            worker = threading.Thread(target=self._run, args=(job,), daemon=True)
            worker.start()
        except BaseException:
            self._busy.release()
            raise
        return answer

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no answer is being written; False if one still is after ``timeout``
        seconds."""
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._busy.release()
        return True

    def _run(self, job: Callable[[], None]) -> None:
        """Write one answer, then free the session for the next (only once it has ended)."""
        try:
            job()
        finally:
            self._busy.release()

    def _answer(
        self,
        message: str,
        max_new_tokens: int,
        method: str,
        out: queue.Queue[Event],
        stop: threading.Event,
    ) -> None:
        a = self.assistant
        try:
            generation, history = self._history()  # before the memories are searched
            context = a.private_context(message)
            chat = [*history, {"role": "user", "content": message}]
            events = a.stream(chat, context=context, max_new_tokens=max_new_tokens, method=method)
            result = self._marked(events, out, stop)
        except SpecSteerError as e:
            out.put({"type": "error", "message": str(e)})
            return
        except Exception:  # the page gets a sentence; the log keeps the details
            logger.exception("the web app failed to answer")
            out.put(
                {
                    "type": "error",
                    "message": "the answer failed on the device; the server log says why",
                }
            )
            return
        if result is None:
            return  # given up: nobody reads on, and a cut answer is no turn of the chat
        self._keep(generation, [chat[-1], {"role": "assistant", "content": result.text}])
        out.put(_done(result, context, self.lifted))

    def _history(self) -> tuple[int, Turn]:
        with self._history_lock:
            return self._generation, list(self.history)

    def _keep(self, generation: int, turn: Turn) -> None:
        """Add ``turn`` to the history unless the history was cleared since ``generation``."""
        with self._history_lock:
            if generation == self._generation:
                self.history = [*self.history, *turn]

    def _marked(
        self, events: Iterator[RoundEvent], out: queue.Queue[Event], stop: threading.Event
    ) -> GenerationResult | None:
        """Put each event's marked pieces on ``out``; return the result (None: ``stop`` was set
        and the generation ended early)."""
        a = self.assistant
        marker = PieceMarker(a.device.decode, a.device.eos_token_ids)
        self.lifted = []
        try:
            for event in events:
                pieces = marker.add(event)
                if pieces:
                    out.put({"type": "tokens", "pieces": pieces})
                    self.lifted += [p["text"] for p in pieces if p.get("kept") == "lift"]
                if isinstance(event, Finished):
                    return event.result
                if stop.is_set():
                    return None
        finally:
            close_events(events)  # ends a generation left early
        raise AssertionError("an answer's events end with Finished")


def _last_seq(log: Any) -> int:
    if log is None:
        return 0
    records = new_records(log, after=0, limit=1)
    return int(records[-1]["seq"]) if records else 0


def _done(result: GenerationResult, context: PrivateContext, lifted: list[str]) -> Event:
    s = result.stats
    return {
        "type": "done",
        "text": result.text,
        "stats": s.as_dict(),
        "rounds": [
            {
                "drafted": r.drafted,
                "accepted": r.accepted,
                "recovered": r.recovered,
                "local": r.local,
            }
            for r in s.rounds
        ],
        "privacy": result.privacy.model_dump() if result.privacy is not None else None,
        "kept": {
            "memories": list(context.memories),
            "characters": len(context.render()),
            "lift": lifted,
            "writer": context.writer,
            "recipients": [{"name": p.name, "relation": p.relation} for p in context.recipients],
        },
        "remembered": list(result.remembered),
    }
