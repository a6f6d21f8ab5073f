"""Model work one request at a time, within each request's deadline.

The model is not re-entrant, so requests take turns holding one lock. A request that runs past its
deadline is answered 504 at once; its worker thread cannot be killed, so the work itself checks
the same :class:`Deadline` between steps (between prompts of a batch, between generated tokens,
between blocks of prompt positions) and stops there, releasing the lock for the next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio

from specsteer.cloud_adapter._apierror import ApiError

__all__ = ["Clock", "Deadline", "ModelRunner"]

Clock = Callable[[], float]


class Deadline:
    """The time a request may still take, read from ``clock`` (monotonic seconds).

    Args:
        seconds: the request's budget.
        clock: the time source (tests pass a fake one).
    """

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self._at - self._clock())

    def check(self) -> None:
        """Raise a 504 once the deadline has passed, so abandoned work stops at this step."""
        if self._clock() >= self._at:
            raise ApiError(
                504, f"the request did not finish within {self.seconds} s; its work was stopped"
            )


class ModelRunner:
    """Runs model work one request at a time, within each request's deadline.

    Args:
        timeout: the default budget of a request, waiting for the model included.
        clock: the deadlines' time source (monotonic seconds).
    """

    def __init__(self, timeout: float, clock: Clock = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[Deadline], Any], timeout: float | None = None) -> Any:
        """``fn(deadline)`` in a worker thread, holding the model; a 504 past the deadline."""
        seconds = timeout or self.timeout
        deadline = Deadline(seconds, self._clock)

        def guarded() -> Any:
            # Wait for the model no longer than the request's own deadline.
            if not self._lock.acquire(timeout=deadline.left()):
                raise ApiError(504, f"the server is busy; no model slot within {seconds} s")
            try:
                deadline.check()
                return fn(deadline)
            finally:
                self._lock.release()

        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(guarded, abandon_on_cancel=True)
        except TimeoutError as e:
            raise ApiError(504, f"the request did not finish within {seconds} s") from e
