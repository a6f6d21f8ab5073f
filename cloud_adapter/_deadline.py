"""A wall-clock deadline under every socket operation of an ``httpx`` client.

httpx's timeouts bound each socket operation on its own: a server that sends one byte of its
response headers every second never trips a 2 s read timeout, so one attempt can last as long
as the server likes. Here every connect, read and write of the connection pool gets the time
left until the current attempt's deadline as its timeout (or fails at once once it has passed),
so an attempt ends at its deadline in every phase: connect, request, headers and body.

The deadline lives in a context variable, set around one attempt with :func:`attempt_deadline`;
each thread has its own, so concurrent sessions sharing a client do not shorten each other.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from specsteer._errors import ConfigurationError

__all__ = ["attempt_deadline", "deadline_client"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "specsteer_attempt_deadline", default=None
)


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    """Bound every socket operation in this block to end ``seconds`` from now.

    Yields:
        The deadline, as a ``time.monotonic()`` value.
    """
    deadline = time.monotonic() + seconds
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` cut to the time left before the deadline; raise ``expired`` once it passed."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the current attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`_DeadlineStream` connections."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_client(limits: httpx.Limits) -> httpx.Client:
    """An ``httpx.Client`` whose connections (direct or through a proxy from the environment)
    honour :func:`attempt_deadline`.

    httpx takes no network backend, so it is put into each transport's connection pool; a pool
    of another shape (a future httpx) fails here, loudly, rather than losing the deadline.
    """
    client = httpx.Client(transport=httpx.HTTPTransport(limits=limits), limits=limits)
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if not isinstance(pool, httpcore.ConnectionPool):
            client.close()
            raise ConfigurationError(
                "this httpx version keeps its connection pool elsewhere, so the attempt deadline "
                f"cannot be installed (httpx {httpx.__version__}); install httpx 0.27 or 0.28"
            )
        pool._network_backend = _DeadlineBackend(pool._network_backend)
    return client
