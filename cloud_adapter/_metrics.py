"""The server's Prometheus metrics, in a registry of their own (several apps may share a process)."""

from __future__ import annotations

import threading

__all__ = ["Metrics"]


class Metrics:
    """Prometheus metrics in a registry of their own (several apps may share a process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "specsteer_requests",
            "HTTP requests served, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "specsteer_request_seconds",
            "Request latency in seconds, by endpoint.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.verified = Counter(
            "specsteer_draft_tokens_verified",
            "Draft tokens run through the ratio test.",
            registry=self.registry,
        )
        self.accepted = Counter(
            "specsteer_draft_tokens_accepted",
            "Draft tokens the ratio test accepted.",
            registry=self.registry,
        )
        self.acceptance = Gauge(
            "specsteer_acceptance_rate",
            "Accepted / verified draft tokens since the server started.",
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._n_verified = 0
        self._n_accepted = 0

    def observe_verify(self, drafted: int, accepted: int) -> None:
        self.verified.inc(drafted)
        self.accepted.inc(accepted)
        with self._lock:
            self._n_verified += drafted
            self._n_accepted += accepted
            if self._n_verified:
                self.acceptance.set(self._n_accepted / self._n_verified)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))
