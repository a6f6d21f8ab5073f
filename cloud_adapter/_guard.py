"""The ASGI guard in front of every route: bearer auth, the body-size limit, request metrics.

It runs before routing and body parsing, so an unauthenticated or oversized request costs the
server nothing beyond its headers (and at most ``max_body_bytes`` of body).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from specsteer.cloud_adapter._apierror import send_error
from specsteer.cloud_adapter._metrics import Metrics

__all__ = ["KNOWN_PATHS", "PUBLIC_PATHS", "Guard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that need no bearer token (``/healthz`` stays open for liveness probes).
PUBLIC_PATHS = frozenset({"/healthz"})
#: Paths with their own metric label; anything else is counted as "other".
KNOWN_PATHS = frozenset({"/v1/verify", "/v1/generate", "/v1/completions", "/healthz", "/metrics"})


class Guard:
    """ASGI middleware: bearer auth, body-size limit, request metrics.

    It runs before routing and body parsing, so an unauthenticated or oversized request costs
    the server nothing beyond its headers (and at most ``max_body_bytes`` of body).
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int, metrics: Metrics):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        label = path if path in KNOWN_PATHS else "other"
        status_box = [500]
        t0 = time.perf_counter()

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = int(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, send_recorded, path)
        finally:
            self.metrics.requests.labels(label, str(status_box[0])).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - t0)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None and path not in PUBLIC_PATHS:
            auth = headers.get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
            if not ok:
                await send_error(
                    send,
                    401,
                    "missing or invalid bearer token; send 'Authorization: Bearer <token>'",
                )
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_error(send, 400, "the Content-Length header is not a number")
                return
            if length > self.max_body:
                await send_error(
                    send, 413, f"the request body exceeds {self.max_body} bytes ({length})"
                )
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body:
                await send_error(send, 413, f"the request body exceeds {self.max_body} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
