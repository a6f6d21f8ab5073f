"""One chat on the web page: answers streamed as marked pieces, then the answer's figures.

The models are not re-entrant, so one answer runs at a time (a second request is told so). The
answer runs in a worker thread; its events, and the audit records written while it runs, come
out of :meth:`ChatSession.ask` as they happen.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from specsteer._assistant import Assistant
from specsteer._errors import ConfigurationError, SpecSteerError
from specsteer._events import Finished, RoundEvent
from specsteer._private_context import PrivateContext
from specsteer._result import GenerationResult
from specsteer.apps.web._egress import new_records
from specsteer.apps.web._tokens import PieceMarker

__all__ = ["ChatSession"]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
#: Seconds between looks at the audit log while an answer runs.
_POLL_S = 0.25


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
        self.history: list[dict[str, str]] = []
        #: The pieces of the last answer the context-lift policy kept on the device.
        self.lifted: list[str] = []
        self._busy = threading.Lock()

    def clear_history(self) -> bool:
        """Forget the chat so far (its text no longer goes out with the next prompt)."""
        self.history.clear()
        return True

    @property
    def audit_log(self) -> Any:
        """The log every payload is written to before it leaves (None without a privacy layer)."""
        egress = self.assistant.egress
        return egress.guard.audit_log if egress is not None else None

    def ask(self, message: str, *, max_new_tokens: int, method: str) -> Iterator[Event]:
        """Answer ``message``: ``tokens`` and ``egress`` events while it runs, then ``done``
        (or one ``error`` event, the history unchanged)."""
        if not self._busy.acquire(blocking=False):
            yield {"type": "error", "message": "an answer is still being written; wait for it"}
            return
        try:
            yield from self._stream(message, max_new_tokens, method)
        finally:
            self._busy.release()

    def _stream(self, message: str, max_new_tokens: int, method: str) -> Iterator[Event]:
        events: queue.Queue[Event] = queue.Queue()
        log = self.audit_log
        seen = _last_seq(log)
        worker = threading.Thread(
            target=self._answer, args=(message, max_new_tokens, method, events), daemon=True
        )
        worker.start()
        while True:
            try:
                event: Event | None = events.get(timeout=_POLL_S)
            except queue.Empty:
                event = None
            if log is not None:
                records = new_records(log, after=seen)
                if records:
                    seen = records[-1]["seq"]
                    yield {"type": "egress", "records": records}
            if event is not None:
                yield event
                if event["type"] in ("done", "error"):
                    return

    def _answer(
        self, message: str, max_new_tokens: int, method: str, out: queue.Queue[Event]
    ) -> None:
        a = self.assistant
        try:
            context = a.private_context(message)
            chat = [*self.history, {"role": "user", "content": message}]
            events = a.stream(chat, context=context, max_new_tokens=max_new_tokens, method=method)
            result = self._marked(events, out)
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
        self.history += [chat[-1], {"role": "assistant", "content": result.text}]
        out.put(_done(result, context, self.lifted))

    def _marked(self, events: Iterator[RoundEvent], out: queue.Queue[Event]) -> GenerationResult:
        """Put each event's marked pieces on ``out``; return the result."""
        a = self.assistant
        marker = PieceMarker(a.device.decode, a.device.eos_token_ids)
        self.lifted = []
        for event in events:
            pieces = marker.add(event)
            if pieces:
                out.put({"type": "tokens", "pieces": pieces})
                self.lifted += [p["text"] for p in pieces if p.get("kept") == "lift"]
            if isinstance(event, Finished):
                return event.result
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
