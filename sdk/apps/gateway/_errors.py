"""Refused requests, and every error as OpenAI's clients expect it.

A request the gateway refuses raises :class:`RequestRefused` (an ``InvalidInputError``: the
caller's mistake) carrying the HTTP status and OpenAI's ``type``, ``param`` and ``code``; the app
turns it, and any other error, into OpenAI's body::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "n", "code": "..."}}
"""

from __future__ import annotations

from typing import Any

from specsteer._errors import InvalidInputError, SpecSteerError, UsageError

__all__ = ["RequestRefused", "error_body", "error_status"]


class RequestRefused(InvalidInputError):
    """A request the gateway will not answer as sent.

    Args:
        message: what is wrong and how to fix it.
        status: the HTTP status (400 for a bad request, 401, 404, 413, 415, ...).
        param: the request field at fault, in OpenAI's dotted form (``messages.[0].content``).
        code: OpenAI's error code (``invalid_type``, ``model_not_found``, ...).
        kind: OpenAI's error type.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = "invalid_value",
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind


def error_status(e: BaseException) -> int:
    """The HTTP status for an error raised while serving a request."""
    if isinstance(e, RequestRefused):
        return e.status
    if isinstance(e, UsageError):
        return 400
    return 500


def error_body(e: BaseException) -> dict[str, Any]:
    """OpenAI's error body for ``e``; an unexpected error says only where to look."""
    if isinstance(e, RequestRefused):
        return _body(str(e), e.kind, e.param, e.code)
    if isinstance(e, UsageError):
        return _body(str(e), "invalid_request_error", None, None)
    if isinstance(e, SpecSteerError):
        return _body(str(e), "server_error", None, None)
    return _body("the answer failed on the device; the gateway's log says why", "server_error")


def _body(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
