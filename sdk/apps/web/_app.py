"""``specsteer web``: a FastAPI app serving the page and its JSON API, on this device only.

Routes: ``/`` the page; ``/api/info``; ``/api/chat`` (POST, a stream of JSON lines: ``tokens``,
``egress``, then ``done`` or ``error``); ``/api/memories`` (list, add), ``/api/memories/search``,
``/api/memories/{id}`` (edit, delete), ``/api/forget``; ``/api/persona`` (read, replace; see
``_persona.py``); ``/api/egress`` (a page of audit records after a sequence number, oldest
first, and the log's verification). Every error is ``{"error": "<what to do>"}``, with the
security headers, and an unexpected one leaves the connection open (``ContainErrors``).

The page holds the user's private memories, so the app listens on loopback by default; who may
use it (host names, origins, the login off loopback) and the headers it sends are
:mod:`._access`'s job.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException
from starlette.routing import Match

from specsteer._errors import SpecSteerError, UsageError
from specsteer._methods import METHOD_NAMES
from specsteer.apps._contain import ContainErrors
from specsteer.apps._limits import LimitBody
from specsteer.apps.web._access import (
    SECURITY_HEADERS,
    Access,
    add_access,
    loopback_names,
)
from specsteer.apps.web._chat import ChatSession
from specsteer.apps.web._egress import records_after, verification
from specsteer.apps.web._persona import add_persona_routes
from specsteer.apps.web._text import check_text
from specsteer.memory import UserNotFoundError

__all__ = ["create_app", "run_web"]

logger = logging.getLogger(__name__)

#: The page's methods, SpecSteer first (the default), then the registry's order.
METHODS = ("specsteer", *(m for m in METHOD_NAMES if m != "specsteer"))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatBody(_Body):
    """One chat turn from the page."""

    message: str = Field(max_length=4000, description="The user's message.")
    max_new_tokens: int = Field(default=64, ge=1, le=512, description="Answer length limit.")
    method: str = Field(default="specsteer", description="Decoding method.")

    _message = field_validator("message")(check_text)

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"choose one of {', '.join(METHODS)}")
        return value


class MemoryBody(_Body):
    """A memory's text from the page."""

    text: str = Field(max_length=8000, description="The memory.")
    reinstate: bool = Field(default=False, description="Store again for a forgotten user.")

    _text = field_validator("text")(check_text)


class ForgetBody(_Body):
    """The user id typed again, so a stray click forgets nothing."""

    user: str = Field(max_length=200)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


#: What the page calls each field, for error messages.
_FIELD_NAMES = {"max_new_tokens": "answer length (tokens)", "text": "memory", "q": "search"}


_SEND_JSON = 'send one JSON object, e.g. {"text": "..."}'


def _body_message(item: Mapping[str, Any]) -> str | None:
    """The message for a body that is not there or is not JSON; None for a field's error."""
    if item.get("type") == "json_invalid":
        why = item.get("ctx", {}).get("error", "JSON decode error")
        return f"request: the body is not valid JSON ({why}); {_SEND_JSON}"
    if item.get("type") == "missing" and tuple(item.get("loc", ())) == ("body",):
        return f"request: the body is empty; {_SEND_JSON}"
    return None


def _validation_message(e: RequestValidationError) -> str:
    parts = []
    for item in e.errors()[:3]:
        whole = _body_message(item)
        if whole is not None:
            return whole
        loc = [str(x) for x in item.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(_FIELD_NAMES.get(x, x) for x in loc) or "request"
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def _status(e: SpecSteerError) -> int:
    name = type(e).__name__
    if name == "MemoryNotFoundError":
        return 404
    if name == "UserForgottenError":
        return 409
    return 400 if isinstance(e, UsageError) else 500


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(e))

    @app.exception_handler(SpecSteerError)
    async def refused(_: Request, e: SpecSteerError) -> JSONResponse:
        return _error(_status(e), str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return _http_error(request, e)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the routes at this path take (each route lists only its own)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _http_error(request: Request, e: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no route, wrong method), in the app's error shape."""
    where = f"{request.method} {request.url.path}"
    if e.status_code == 404:
        message = f"there is no {where}; the page's API is under /api (see docs/web.md)"
    elif e.status_code == 405:
        allowed = _allowed_methods(request)
        message = f"{where} is not allowed; this path takes {', '.join(allowed) or 'no method'}"
        return JSONResponse(
            {"error": message}, status_code=405, headers={"Allow": ", ".join(allowed)}
        )
    else:
        message = f"{where} was refused: {e.detail}"
    return JSONResponse({"error": message}, status_code=e.status_code, headers=e.headers)


def _failed(e: Exception) -> Response:
    """The 500 for an unexpected error, in the app's error shape, with the security headers."""
    logger.error("web request failed: %s", type(e).__name__, exc_info=e)
    response = _error(500, "the request failed on the device; the server log says why")
    response.headers.update(SECURITY_HEADERS)
    return response


_FORGOTTEN = (
    "{user!r} was forgotten (their key was destroyed), so nothing was stored; tick "
    "'Store again for a forgotten user' to start afresh under a new key"
)


def _memory_view(memory: Any) -> dict[str, Any]:
    return {"id": memory.id, "text": memory.text}


def _add_memory_routes(app: FastAPI, session: ChatSession) -> None:
    def store() -> tuple[Any, str]:
        a = session.assistant
        if a.memory is None or a.user_id is None:
            raise UsageError("this app runs without a memory store")
        return a.memory, a.user_id

    @app.get("/api/memories")
    def memories() -> dict[str, Any]:
        mem, user = store()
        return {"user": user, "memories": [_memory_view(m) for m in mem.memories(user)]}

    @app.post("/api/memories", status_code=201, response_model=None)
    def add(body: MemoryBody) -> dict[str, Any] | JSONResponse:
        mem, user = store()
        if mem.keyring.is_forgotten(user):
            if not body.reinstate:
                return _error(409, _FORGOTTEN.format(user=user))
            mem.reinstate_user(user)
        return _memory_view(mem.add(user, body.text))

    @app.get("/api/memories/search")
    def search(
        q: Annotated[str, Query(max_length=2000), AfterValidator(check_text)], k: int = 5
    ) -> dict[str, Any]:
        mem, user = store()
        hits = mem.search(user, q, k=max(1, min(k, 50)))
        return {"hits": [{"id": h.id, "text": h.text, "score": round(h.score, 3)} for h in hits]}

    # Once a memory is edited or deleted, its old text is no longer among the texts the guard
    # screens for, but the chat history may still hold it (in the user's own words or in an
    # answer), and the history goes out with the next turn's prompt: it is cleared.
    @app.put("/api/memories/{memory_id}")
    def edit(memory_id: str, body: MemoryBody) -> dict[str, Any]:
        mem, user = store()
        view = _memory_view(mem.update(user, memory_id, text=body.text))
        return {**view, "history_cleared": session.clear_history()}

    @app.delete("/api/memories/{memory_id}")
    def delete(memory_id: str) -> dict[str, Any]:
        mem, user = store()
        deleted = mem.delete(user, memory_id)
        return {"deleted": deleted, "history_cleared": deleted and session.clear_history()}

    @app.post("/api/forget")
    def forget(body: ForgetBody) -> dict[str, Any]:
        mem, user = store()
        if body.user != user:
            raise UsageError(f"type the user's name, {user!r}, to confirm; nothing was forgotten")
        with contextlib.suppress(UserNotFoundError):  # nothing stored: the chat still goes
            mem.forget_user(user)
        session.clear_history()
        return {"forgotten": user, "history_cleared": True}


async def _lines(events: AsyncIterable[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The events as JSON lines; a client that leaves cancels this, which gives the answer up."""
    async for event in events:
        yield json.dumps(event, ensure_ascii=False).encode() + b"\n"


def _add_chat_routes(app: FastAPI, session: ChatSession) -> None:
    @app.get("/api/info")
    def info() -> dict[str, Any]:
        a = session.assistant
        return {
            "models": session.label,
            "user": a.user_id,
            "wire": a.decoder.wire,
            "cloud": a.decoder.cloud.destination if a.decoder.cloud is not None else "none",
            "methods": list(METHODS),
        }

    @app.post("/api/chat")
    def chat(body: ChatBody) -> StreamingResponse:
        events = session.ask(body.message, max_new_tokens=body.max_new_tokens, method=body.method)
        return StreamingResponse(_lines(events), media_type="application/x-ndjson")

    @app.get("/api/egress")
    def egress(after: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        log = session.audit_log
        if log is None:
            return {"records": [], "more": False, "verification": None}
        page = records_after(log, after=after)
        return {"records": page.records, "more": page.more, "verification": verification(log)}


def create_app(session: ChatSession, *, access: Access) -> FastAPI:
    """The web app over ``session``.

    Args:
        session: the assistant and chat behind the page.
        access: the host names answered and the login (see :class:`Access`); an empty host
            set answers no one.
    """
    app = FastAPI(title="specsteer", docs_url=None, redoc_url=None, openapi_url=None)
    static = resources.files("specsteer.apps.web") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _add_chat_routes(app, session)
    _add_memory_routes(app, session)
    add_persona_routes(app, session)
    _add_error_handlers(app)
    app.add_middleware(LimitBody, limit=MAX_BODY_BYTES, respond=_too_large)
    add_access(app, access)
    app.add_middleware(ContainErrors, respond=_failed)
    return app


#: The largest request body the app reads (a memory is at most 8,000 characters).
MAX_BODY_BYTES = 1024 * 1024


def _too_large() -> Response:
    return _error(413, f"the request body is over {MAX_BODY_BYTES} bytes; send less at a time")


def run_web(
    session: ChatSession,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    allowed_hosts: Iterable[str] = (),
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page until interrupted.

    On loopback the app answers to the loopback names only, without a login. Off loopback it
    answers only to ``allowed_hosts`` and needs the login secret, which ``on_ready`` receives
    once, inside the start URL.

    Args:
        session: the assistant and chat behind the page.
        host: the address to listen on (loopback by default: the page shows private memories).
        port: the port; 0 picks a free one.
        allowed_hosts: off loopback, the host names the page is reached by (required there):
            ``NAME`` on any port (the app's own, or a TLS proxy's), ``NAME:PORT`` on that port
            only (see :class:`Access`).
        on_ready: called with the start URL once the server listens.

    Raises:
        ConfigurationError: off loopback without ``allowed_hosts``, or with a value that is
            not a host name.
    """
    from specsteer.cloud_adapter import serve
    from specsteer.cloud_adapter._server import is_loopback

    remote = not is_loopback(host)
    access = Access.remote(allowed_hosts) if remote else Access()
    app = create_app(session, access=access)

    def ready(url: str) -> None:
        if not remote:
            access.hosts.update(loopback_names(host, int(url.rsplit(":", 1)[1])))
        if on_ready is not None:
            on_ready(access.start_url(url))

    serve(app, host=host, port=port, on_ready=ready)
