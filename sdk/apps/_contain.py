"""An ASGI middleware that turns an unexpected error into the app's own 500 response.

Starlette's handler for ``Exception`` sends its response and then re-raises the error to the
server, which drops the connection: a client's next request on it fails. :class:`ContainErrors`
catches the error before any response has started, sends the app's 500 itself and returns.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ContainErrors"]


class ContainErrors:
    """ASGI middleware: an error raised before the response starts becomes ``respond(error)``
    (the app logs it there); the connection stays open for the client's next request.

    Args:
        app: the app inside.
        respond: the 500 response for an unexpected error.
    """

    def __init__(self, app: ASGIApp, *, respond: Callable[[Exception], Response]) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            if started or scope["type"] != "http":
                raise
            await self.respond(e)(scope, receive, send)
