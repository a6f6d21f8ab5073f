"""Answers for async callers: one at a time in arrival order, streamed as pieces of text.

The models are not re-entrant, so an assistant's async answers run on one worker thread, in the
order they were asked for (:class:`AnswerQueue`). An answer that is given up while it waits its
turn leaves the queue; one given up while it runs is ended at its next round event, and the next
answer starts.

An :class:`AnswerStream` runs the generation's round events (``Assistant.stream``) on that
thread and hands the answer to the event loop as :class:`Piece` objects through an
``asyncio.Queue``. What a piece is made from is decided in one function, :func:`token_pieces`.
Ending an answer early (given up, or at a stop sequence) closes the event stream, and the
events seen so far still fold into its statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from specsteer._errors import InvalidInputError
from specsteer._events import Finished, RoundEvent, StatsFold, Tokens, close_events
from specsteer._result import GenerationResult, GenerationStats
from specsteer._wire import PARTIAL, IncrementalText

__all__ = ["AnswerQueue", "AnswerStream", "AnswerText", "Cut", "Piece", "Ticket", "token_pieces"]

T = TypeVar("T")
#: Starts one answer (in its turn, on the worker thread): its method's name and its events.
Produce = Callable[[], tuple[str, Iterator[RoundEvent]]]

#: Characters after an unclosed ``[`` held back: a pseudonymized placeholder (``[PHONE_1]``)
#: is restored only once it is whole.
_PLACEHOLDER_CHARS = 40


@dataclass(frozen=True)
class Piece:
    """A stretch of the answer that became final.

    Attributes:
        text: its text (pieces joined give the answer's text).
        token_ids: the device token ids that wrote it.
    """

    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Cut:
    """An answer that ended at a stop sequence: what it cost up to there.

    Attributes:
        stats: the rounds, payloads and times up to the stop (folded from its events).
        privacy: what left the device for it (a privacy report), when a privacy layer is attached.
        remembered: the user's statements stored anew for the turn.
    """

    stats: GenerationStats
    privacy: Any | None
    remembered: tuple[str, ...] = ()


class Ticket(Generic[T]):
    """One job's place in an :class:`AnswerQueue`."""

    def __init__(self, future: Future[T], cancel: threading.Event) -> None:
        self._future = future
        self._cancel = cancel

    def cancel(self) -> None:
        """Give the place up: a waiting job is dropped, a running one finds its event set."""
        self._cancel.set()
        self._future.cancel()

    async def result(self) -> T:
        """Wait for the job's value (cancelling the wait gives the place up)."""
        try:
            return await asyncio.wrap_future(self._future)
        except asyncio.CancelledError:
            self.cancel()
            raise


class AnswerQueue:
    """Runs jobs one at a time, in the order they were submitted, on one worker thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="specsteer-answer")

    def submit(self, job: Callable[[threading.Event], T]) -> Ticket[T]:
        """Queue ``job(cancel)``; it runs when the jobs before it are done.

        A running job is expected to end soon once ``cancel`` is set.
        """
        cancel = threading.Event()
        return Ticket(self._pool.submit(job, cancel), cancel)

    async def run(self, job: Callable[[threading.Event], T]) -> T:
        """Queue ``job`` and wait for its value."""
        return await self.submit(job).result()

    def close(self) -> None:
        """Drop the waiting jobs and let the worker thread end after the running one."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class AnswerText:
    """The answer's text as its tokens arrive, and how much of it has been handed out.

    Text is held back while it could still change or end: an incomplete character, trailing
    whitespace (the final answer is stripped), an unclosed placeholder, or the start of a stop
    sequence.
    """

    def __init__(
        self,
        decode: Callable[[Sequence[int]], str],
        restore: Callable[[str], str],
        stop: Sequence[str] = (),
        eos: frozenset[int] = frozenset(),
    ) -> None:
        self._text = IncrementalText(decode)
        self._restore = restore
        self.eos = eos
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.pending: list[int] = []  # ids whose text has not been handed out yet
        self.sent = ""
        self.stopped_at: str | None = None

    def advance(self, ids: Sequence[int]) -> str:
        """Take new token ids; the text that is now final (may be empty)."""
        self.ids.extend(ids)
        self.pending.extend(ids)
        full = self._restore(self._text(self.ids)).lstrip()
        at = self._stop_at(full)
        return self._hand_out(full[:at] if at is not None else full[: self._safe_end(full)])

    def finish(self, final: str) -> str:
        """The rest of the answer once the generation is done (its final ``text``)."""
        at = self._stop_at(final)
        return self._hand_out(final[:at] if at is not None else final)

    def _stop_at(self, full: str) -> int | None:
        """Where the first stop sequence after the text handed out starts (and note which)."""
        hits = sorted((full.find(s, len(self.sent)), s) for s in self.stop)
        found = [(at, s) for at, s in hits if at >= 0]
        if not found:
            return None
        at, self.stopped_at = found[0]
        return at

    def _hand_out(self, ready: str) -> str:
        if not ready.startswith(self.sent):
            return ""  # the decoded text changed behind the point handed out: wait
        new, self.sent = ready[len(self.sent) :], ready
        return new

    def _safe_end(self, full: str) -> int:
        end = len(full.rstrip().rstrip(PARTIAL))
        bracket = full.rfind("[", 0, end)
        if bracket >= 0 and "]" not in full[bracket:end] and end - bracket <= _PLACEHOLDER_CHARS:
            end = bracket
        for s in self.stop:
            for n in range(min(len(s) - 1, end), 0, -1):
                if full[:end].endswith(s[:n]):
                    end -= n
                    break
        return max(end, len(self.sent))

    def take_pending(self) -> tuple[int, ...]:
        """The token ids not yet attached to a piece (they go with the next one)."""
        ids, self.pending = tuple(self.pending), []
        return ids


def token_pieces(answer: AnswerText, event: RoundEvent) -> list[Piece]:
    """The pieces a round event makes: the one place where the engine's output becomes pieces.

    A :class:`~specsteer.Tokens` event's tokens are decoded (end tokens are not text), and the
    text that can no longer change is one piece; the other events make none.
    """
    if not isinstance(event, Tokens):
        return []
    text = answer.advance([t for t in event.ids if t not in answer.eos])
    return [Piece(text, answer.take_pending())] if text else []


class AnswerStream:
    """The pieces of one answer as they become final, then how it ended.

    Iterate it with ``async for piece in stream``; the generation starts at the first step and
    runs in its turn. Leaving early? Call :meth:`cancel` (or use ``async with``): a waiting
    answer leaves the queue, a running one ends at its next round event.

    Attributes:
        result: the generation's result once the stream is exhausted; None when the answer
            ended at a stop sequence (see :attr:`cut`).
        cut: for an answer that ended at a stop sequence, what is known of it.
        stopped_at: the stop sequence the answer ended before, or None.
    """

    def __init__(
        self,
        queue: AnswerQueue,
        produce: Produce,
        on_cut: Callable[[GenerationStats], Cut],
        text: AnswerText,
    ) -> None:
        if any(not isinstance(s, str) or not s for s in text.stop):
            raise InvalidInputError("stop sequences must be non-empty strings")
        self._queue = queue
        self._produce = produce
        self._on_cut = on_cut
        self._answer = text
        self._ticket: Ticket[None] | None = None
        self._task: asyncio.Future[None] | None = None
        self._pieces: asyncio.Queue[Piece | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False  # the end was handed out, or the answer given up
        self.result: GenerationResult | None = None
        self.cut: Cut | None = None

    @property
    def stopped_at(self) -> str | None:
        """The stop sequence the answer ended before, or None."""
        return self._answer.stopped_at

    @property
    def text(self) -> str:
        """The text handed out so far (the whole answer once the stream is exhausted)."""
        return self._answer.sent

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> Piece:
        if self._ended:
            raise StopAsyncIteration
        if self._pieces is None:
            self._start()
        assert self._pieces is not None and self._task is not None
        piece = await self._pieces.get()
        if piece is not None:
            return piece
        if not self._ended:
            self._ended = True
            await self._task  # the generation's own error, if it failed
        raise StopAsyncIteration

    def cancel(self) -> None:
        """Give the answer up: out of the queue if it waits, ended at its next event if it runs.
        Iterating it afterwards ends at once."""
        if self._ended:
            return
        self._ended = True
        if self._ticket is not None:
            self._ticket.cancel()
        if self._task is not None:
            self._task.cancel()
        if self._pieces is not None:
            self._pieces.put_nowait(None)  # wakes a reader waiting for the next piece

    async def __aenter__(self) -> AnswerStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pieces = asyncio.Queue()
        self._ticket = self._queue.submit(self._job)
        self._task = asyncio.ensure_future(self._ticket.result())

    def _put(self, piece: Piece | None) -> None:
        assert self._loop is not None and self._pieces is not None
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody listens
            self._loop.call_soon_threadsafe(self._pieces.put_nowait, piece)

    def _job(self, cancel: threading.Event) -> None:
        answer = self._answer
        t0 = time.perf_counter()
        try:
            method, events = self._produce()
            fold = StatsFold(method)
            try:
                for event in events:
                    if isinstance(event, Finished):
                        self._finish(event.result)
                        return
                    fold.add(event)
                    for piece in token_pieces(answer, event):
                        self._put(piece)
                    if answer.stopped_at is not None:
                        self.cut = self._on_cut(fold.stats(time.perf_counter() - t0))
                        return
                    if cancel.is_set():
                        return  # given up: nobody reads the rest
            finally:
                close_events(events)  # ends a generation left early
        finally:
            self._put(None)

    def _finish(self, result: GenerationResult) -> None:
        rest = self._answer.finish(result.text)
        if rest:
            self._put(Piece(rest, self._answer.take_pending()))
        self.result = result
