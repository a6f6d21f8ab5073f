"""The reference server's error shape, vLLM's: ``{"error": {"message", "type", "param", "code"}}``.

Shared by the ASGI guard (which answers before any route runs) and the routes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["ERROR_TYPES", "ApiError", "error_body", "error_response", "send_error"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: Error types as vLLM names them (its ``ErrorResponse``: message, type, param, code).
ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
    504: "TimeoutError",
}


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """vLLM's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = kind or ERROR_TYPES.get(status, "error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message"}}`` with ``status``."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or ERROR_TYPES.get(status, "error")


def error_response(status: int, message: str, kind: str | None = None) -> JSONResponse:
    """The error as a response (401s name the auth scheme, as HTTP asks)."""
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(status, message, kind), status_code=status, headers=headers)


async def send_error(send: Send, status: int, message: str) -> None:
    """The error sent on a raw ASGI channel (before routing)."""
    body = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
