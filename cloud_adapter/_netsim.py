"""``SimulatedNetwork``: round-trip latency and bandwidth added at the adapter seam."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from specsteer._errors import ConfigurationError
from specsteer.cloud_adapter._base import CloudVerifier, ForwardingVerifier
from specsteer.cloud_adapter.protocol import (
    GenerateRequest,
    GenerateResponse,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["SimulatedNetwork"]

R = TypeVar("R", bound=BaseModel)


class SimulatedNetwork(ForwardingVerifier):
    """Wraps a verifier and delays each call as a network link would.

    Each call sleeps ``rtt_ms`` (plus a uniform draw in ``[0, jitter_ms]``) plus the time the
    request and response bytes take at ``bandwidth_mbps``: the inner adapter's own wire bytes
    going up, the response's JSON coming back. A failed call still costs its round trip.

    Args:
        inner: the verifier that does the work.
        rtt_ms: round-trip time in milliseconds.
        bandwidth_mbps: link speed in megabits per second (``None``: unlimited).
        jitter_ms: extra random delay per call, up to this many milliseconds.
        seed: seed for the jitter draws.
        sleep: the sleep function (injectable so tests need not wait).
    """

    def __init__(
        self,
        inner: CloudVerifier,
        *,
        rtt_ms: float,
        bandwidth_mbps: float | None = None,
        jitter_ms: float = 0.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rtt_ms < 0 or jitter_ms < 0:
            raise ConfigurationError("rtt_ms and jitter_ms must be >= 0")
        if bandwidth_mbps is not None and bandwidth_mbps <= 0:
            raise ConfigurationError("bandwidth_mbps must be > 0 (or None for unlimited)")
        super().__init__(inner)
        self.rtt_ms = rtt_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.jitter_ms = jitter_ms
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._lock = threading.Lock()
        #: Calls made, bytes each way, and seconds of delay added so far.
        self.calls = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.delay_seconds = 0.0

    def delay_for(self, n_bytes: int) -> float:
        """Seconds one round trip carrying ``n_bytes`` (both directions) takes."""
        with self._lock:
            jitter = self._rng.uniform(0.0, self.jitter_ms) if self.jitter_ms else 0.0
        seconds = (self.rtt_ms + jitter) / 1000.0
        if self.bandwidth_mbps is not None:
            seconds += n_bytes * 8 / (self.bandwidth_mbps * 1e6)
        return seconds

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        return self._round_trip(wire, lambda: self.inner.transmit(request, wire))

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        return self._round_trip(wire, lambda: self.inner.transmit_generate(request, wire))

    def _round_trip(self, wire: bytes, call: Callable[[], R]) -> R:
        """One call: its answer, after the delay its bytes both ways take."""
        try:
            response = call()
        except Exception:
            self._account(len(wire), 0)
            raise
        self._account(len(wire), len(response.model_dump_json().encode()))
        return response

    def _account(self, sent: int, received: int) -> None:
        delay = self.delay_for(sent + received)
        with self._lock:
            self.calls += 1
            self.bytes_sent += sent
            self.bytes_received += received
            self.delay_seconds += delay
        self._sleep(delay)
