"""``specsteer gateway``: OpenAI's Chat Completions API on the device, over an ``Assistant``.

Routes: ``POST /v1/chat/completions`` (a whole completion, or server-sent events with
``stream: true``), ``GET /v1/models``, ``GET /v1/models/{model}``. Each request names its memory
user in the ``user`` field or the ``X-SpecSteer-User`` header; requests for different users never
share memories. Answers run one at a time in arrival order (``Assistant.astream``); a client that
goes away, while its answer waits or while it streams, gives its place up.

The gateway answers only requests addressed to the host it serves when it listens on loopback
(no DNS rebinding), refuses requests a browser page on another site sends (``Origin``), wants a
JSON body, and checks a bearer token when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from specsteer._assistant import Assistant
from specsteer._errors import InvalidInputError, SpecSteerError
from specsteer._streaming import AnswerStream
from specsteer.apps._contain import ContainErrors
from specsteer.apps._limits import LimitBody
from specsteer.apps._media import is_json
from specsteer.apps.gateway._errors import RequestRefused, error_body, error_status
from specsteer.apps.gateway._responses import (
    Answered,
    Reply,
    chunk,
    completion,
    specsteer_view,
    sse,
    usage_chunk,
)
from specsteer.apps.gateway._schema import ChatCall, parse_call

__all__ = ["USER_HEADER", "create_gateway"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The header that names the memory user when a client cannot set the ``user`` field.
USER_HEADER = "x-specsteer-user"


def create_gateway(
    assistant: Assistant,
    *,
    model_name: str = "specsteer",
    default_user: str | None = None,
    token: str | None = None,
    hosts: set[str] | None = None,
    max_tokens: int = 2048,
    max_body_bytes: int = 4 * 1024 * 1024,
) -> FastAPI:
    """The gateway app over ``assistant``.

    Args:
        assistant: answers every request; with a memory store, each request uses its user's
            memories (:meth:`Assistant.for_user`).
        model_name: the one model id the gateway serves (what clients pass as ``model``).
        default_user: whose memories when a request names no user (default: the assistant's).
        token: the bearer token clients must send; None accepts any client.
        hosts: the ``Host`` headers to answer (filled in once the port is known); None or empty
            answers any.
        max_tokens: the longest answer a request may ask for.
        max_body_bytes: the largest request body.
    """
    app = FastAPI(title="specsteer gateway", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())
    model = {"id": model_name, "object": "model", "created": created, "owned_by": "specsteer"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [model]}

    @app.get("/v1/models/{name}")
    def one_model(name: str) -> dict[str, Any]:
        _check_model(name, model_name)
        return model

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        call = parse_call(await request.body(), base=assistant.config, max_tokens=max_tokens)
        _check_model(call.model, model_name)
        user = _user(call, request, default_user or assistant.user_id)
        view = _view(assistant, user)
        tokens = len(assistant.device.encode_chat(call.chat))
        reply = Reply(call.model, user, tokens, usage_last=call.include_usage)
        stream = view.astream(call.chat, stop=call.stop, **call.overrides)
        if call.stream:
            return _EventStream(
                _events(stream, call, reply),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        answered = await _unless_gone(request, _collect(stream, reply.user))
        if answered is None:
            return Response(status_code=499)  # nobody is there to read it
        return JSONResponse(completion(reply, answered))

    _add_error_handlers(app)
    app.add_middleware(LimitBody, limit=max_body_bytes, respond=_too_large(max_body_bytes))
    app.add_middleware(ContainErrors, respond=_failed)
    app.add_middleware(_Guard, token=token, hosts=hosts if hosts is not None else set())
    return app


def _check_model(name: str, served: str) -> None:
    if name != served:
        raise RequestRefused(
            f"The model `{name}` does not exist; this gateway serves `{served}`",
            status=404,
            param="model",
            code="model_not_found",
        )


def _user(call: ChatCall, request: Request, default: str | None) -> str | None:
    header = request.headers.get(USER_HEADER)
    if call.user and header and call.user != header:
        raise RequestRefused(
            f"the user field ({call.user!r}) and the {USER_HEADER} header ({header!r}) name "
            "different users; send one",
            param="user",
        )
    return call.user or header or default


def _view(assistant: Assistant, user: str | None) -> Assistant:
    """The assistant for ``user``'s memories (the assistant itself when it has no store)."""
    if assistant.memory is None or user is None:
        return assistant
    try:
        return assistant.for_user(user)
    except InvalidInputError as e:
        raise RequestRefused(f"Invalid 'user': {e}", param="user") from e


async def _collect(stream: AnswerStream, user: str | None) -> Answered:
    tokens = 0
    try:
        async for piece in stream:
            tokens += len(piece.token_ids)
    finally:
        stream.cancel()  # a no-op once the answer is done
    return Answered.of(stream, user, tokens)


async def _unless_gone(request: Request, answer: Awaitable[T]) -> T | None:
    """Await ``answer`` unless the client disconnects first (the answer is then given up)."""
    task = asyncio.ensure_future(answer)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _events(stream: AnswerStream, call: ChatCall, reply: Reply) -> AsyncIterator[bytes]:
    """The answer as server-sent events: the role, each piece, the end with the ``specsteer``
    object, usage when asked for, then ``[DONE]``; an error mid-way is one ``error`` event."""
    tokens = 0
    try:
        yield sse(chunk(reply, {"role": "assistant", "content": ""}))
        async for piece in stream:
            tokens += len(piece.token_ids)
            yield sse(chunk(reply, {"content": piece.text}))
        answered = Answered.of(stream, reply.user, tokens)
        yield sse(chunk(reply, {}, answered.finish_reason, specsteer_view(stream, reply.user)))
        if call.include_usage:
            yield sse(usage_chunk(reply, tokens))
        yield sse("[DONE]")
    except Exception as e:
        _log(e)
        yield sse(error_body(e))
    finally:
        stream.cancel()  # the client left mid-stream: give the place up


class _EventStream(StreamingResponse):
    """A stream that ends as soon as the client goes away, even while its answer waits its
    turn and nothing is being written (whatever ASGI version the server speaks)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def respond() -> None:
                with contextlib.suppress(OSError):  # the connection broke while writing
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(respond)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


def _log(e: BaseException) -> None:
    if error_status(e) >= 500:
        logger.error("gateway request failed: %s", type(e).__name__, exc_info=e)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = f"Invalid URL ({request.method} {request.url.path})"
        if e.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        refused = RequestRefused(message, status=e.status_code, code=None)
        return JSONResponse(error_body(refused), status_code=e.status_code)

    @app.exception_handler(SpecSteerError)
    async def refused(_: Request, e: SpecSteerError) -> JSONResponse:
        _log(e)
        return JSONResponse(error_body(e), status_code=error_status(e))


def _too_large(limit: int) -> Callable[[], Response]:
    """OpenAI's 413 body for a request body over ``limit`` bytes."""

    def respond() -> Response:
        refused = RequestRefused(
            f"the request body exceeds {limit} bytes", status=413, code="request_too_large"
        )
        return JSONResponse(error_body(refused), status_code=413)

    return respond


def _failed(e: Exception) -> Response:
    """OpenAI's 500 body for an unexpected error."""
    _log(e)
    return JSONResponse(error_body(e), status_code=500)


class _Guard:
    """ASGI middleware: the host, origin, content type and bearer token of every request.

    It runs before routing, so a refused request costs the gateway its headers only.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, hosts: set[str]) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(error_body(refusal), status_code=refusal.status)
        if refusal.status == 401:
            response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _refusal(self, scope: Scope) -> RequestRefused | None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        host = headers.get("host", b"").decode("latin-1")
        if self.hosts and host not in self.hosts:
            return RequestRefused(
                f"this gateway answers only to {', '.join(sorted(self.hosts))}",
                status=421,
                code=None,
            )
        origin = headers.get("origin")
        if origin is not None and origin.decode("latin-1") != f"http://{host}":
            return RequestRefused("requests from web pages of other sites are refused", status=403)
        if self.token is not None:
            scheme, _, given = headers.get("authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                return RequestRefused(
                    "Incorrect API key provided: send the gateway's token as "
                    "'Authorization: Bearer <token>'",
                    status=401,
                    code="invalid_api_key",
                )
        content_type = headers.get("content-type", b"").decode("latin-1")
        if scope.get("method") == "POST" and not is_json(content_type):
            return RequestRefused(
                "send a JSON body (content-type: application/json)", status=415, code=None
            )
        return None
