"""``specsteer web``: a FastAPI app serving the page and its JSON API, on this device only.

Routes: ``/`` the page; ``/api/info``; ``/api/chat`` (POST, a stream of JSON lines: ``tokens``,
``egress``, then ``done`` or ``error``); ``/api/memories`` (list, add), ``/api/memories/search``,
``/api/memories/{id}`` (edit, delete), ``/api/forget``; ``/api/egress`` (audit records after a
sequence number, and the log's verification).

The page holds the user's private memories, so the app listens on loopback by default, answers
only requests addressed to the host it serves (no DNS rebinding), and refuses state-changing
requests from other origins or without a JSON body (no cross-site forms).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator

from specsteer._errors import SpecSteerError, UsageError
from specsteer._methods import METHOD_NAMES
from specsteer.apps.web._chat import ChatSession
from specsteer.apps.web._egress import new_records, verification

__all__ = ["create_app", "run_web"]

logger = logging.getLogger(__name__)

#: The page's methods, SpecSteer first (the default), then the registry's order.
METHODS = ("specsteer", *(m for m in METHOD_NAMES if m != "specsteer"))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("it is empty; write something first")
    return value


class ChatBody(_Body):
    """One chat turn from the page."""

    message: str = Field(max_length=4000, description="The user's message.")
    max_new_tokens: int = Field(default=64, ge=1, le=512, description="Answer length limit.")
    method: str = Field(default="specsteer", description="Decoding method.")

    _message = field_validator("message")(_not_blank)

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

    _text = field_validator("text")(_not_blank)


class ForgetBody(_Body):
    """The user id typed again, so a stray click forgets nothing."""

    user: str = Field(max_length=200)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


#: What the page calls each field, for error messages.
_FIELD_NAMES = {"max_new_tokens": "answer length (tokens)", "text": "memory", "q": "search"}


def _validation_message(e: RequestValidationError) -> str:
    parts = []
    for item in e.errors()[:3]:
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

    @app.exception_handler(Exception)
    async def failed(_: Request, e: Exception) -> JSONResponse:
        logger.error("web request failed: %s", type(e).__name__, exc_info=e)
        return _error(500, "the request failed on the device; the server log says why")


def _add_guard(app: FastAPI, hosts: set[str]) -> None:
    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.headers.get("host", "")
        if hosts and host not in hosts:
            return _error(421, f"this app answers only to {', '.join(sorted(hosts))}")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin != f"http://{host}":
                return _error(403, "requests from other sites are refused")
            json_body = request.headers.get("content-type", "").startswith("application/json")
            if request.method in ("POST", "PUT") and not json_body:
                return _error(415, "send a JSON body (content-type: application/json)")
        return await call_next(request)


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
        q: Annotated[str, Query(min_length=1, max_length=2000)], k: int = 5
    ) -> dict[str, Any]:
        mem, user = store()
        hits = mem.search(user, _not_blank(q), k=max(1, min(k, 50)))
        return {"hits": [{"id": h.id, "text": h.text, "score": round(h.score, 3)} for h in hits]}

    @app.put("/api/memories/{memory_id}")
    def edit(memory_id: str, body: MemoryBody) -> dict[str, Any]:
        mem, user = store()
        return _memory_view(mem.update(user, memory_id, text=body.text))

    @app.delete("/api/memories/{memory_id}")
    def delete(memory_id: str) -> dict[str, Any]:
        mem, user = store()
        return {"deleted": mem.delete(user, memory_id)}

    @app.post("/api/forget")
    def forget(body: ForgetBody) -> dict[str, Any]:
        mem, user = store()
        if body.user != user:
            raise UsageError(f"type the user's name, {user!r}, to confirm; nothing was forgotten")
        mem.forget_user(user)
        session.history.clear()
        return {"forgotten": user}


def _lines(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
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
            return {"records": [], "verification": None}
        return {"records": new_records(log, after=after), "verification": verification(log)}


def create_app(session: ChatSession, *, hosts: set[str] | None = None) -> FastAPI:
    """The web app over ``session``.

    Args:
        session: the assistant and chat behind the page.
        hosts: the ``Host`` headers to answer (``{"127.0.0.1:8765"}``); the set may be filled
            in once the port is known; None or empty answers any.
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
    _add_error_handlers(app)
    _add_guard(app, hosts if hosts is not None else set())
    return app


def _host_names(host: str, port: int) -> set[str]:
    from specsteer.cloud_adapter._server import is_loopback

    if not is_loopback(host):
        return set()  # a public bind was asked for explicitly; names are not knowable here
    return {f"{name}:{port}" for name in (host, "127.0.0.1", "localhost", "[::1]")}


def run_web(
    session: ChatSession,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page until interrupted.

    Args:
        session: the assistant and chat behind the page.
        host: the address to listen on (loopback by default: the page shows private memories).
        port: the port; 0 picks a free one.
        on_ready: called with the page's URL once the server listens.
    """
    from specsteer.cloud_adapter import serve

    hosts: set[str] = set()
    app = create_app(session, hosts=hosts)

    def ready(url: str) -> None:
        hosts.update(_host_names(host, int(url.rsplit(":", 1)[1])))
        if on_ready is not None:
            on_ready(url + "/")

    serve(app, host=host, port=port, on_ready=ready)
