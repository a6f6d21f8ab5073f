"""An ASGI middleware that refuses a request body over a size, before the app reads it whole."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LimitBody"]


class LimitBody:
    """ASGI middleware: a body that says it is over ``limit`` bytes (``content-length``), or
    that goes past it while it is read, gets ``respond()`` (a 413) and goes no further.

    Args:
        app: the app inside.
        limit: the largest body, in bytes.
        respond: the response to a body over the limit.
    """

    def __init__(self, app: ASGIApp, *, limit: int, respond: Callable[[], Response]) -> None:
        self.app = app
        self.limit = limit
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self.respond()(scope, receive, send)
            return
        seen, over = 0, False

        async def counted() -> Message:
            nonlocal seen, over
            if over:  # past the limit the app reads the client as gone, and answers no one
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                over = seen > self.limit
            return {"type": "http.disconnect"} if over else message

        async def sending(message: Message) -> None:
            if not over:
                await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not over:
                raise  # the app's own failure; a read cut short at the limit is answered below
        if over:
            await self.respond()(scope, receive, send)
