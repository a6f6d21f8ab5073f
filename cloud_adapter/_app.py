"""The reference server's routes and app factory: FastAPI around :class:`VerifierCore`.

Endpoints:

* ``POST /v1/verify`` -- the wire protocol (stateless; KV caches are reused by token prefix);
* ``POST /v1/generate`` -- the cloud model's own answer (``cloud_only``), within
  ``ServerLimits.max_new_tokens`` and ``generate_timeout_s``;
* ``POST /v1/completions`` -- the vLLM subset the OpenAI-compatible adapter uses
  (:mod:`._completions`);
* ``GET /healthz`` -- liveness (no token needed, reveals nothing);
* ``GET /metrics`` -- Prometheus text format (:mod:`._metrics`).

Auth and the body limit run in front of every route (:mod:`._guard`). Every error is JSON in
vLLM's shape (:mod:`._apierror`), and bad input always gets a 4xx with a message. Request bodies
are never logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from specsteer._errors import DegenerateScoresError, ProtocolError, summarize_validation
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._apierror import ApiError, error_response
from specsteer.cloud_adapter._base import check_response
from specsteer.cloud_adapter._completions import CompletionRequest, Completions
from specsteer.cloud_adapter._guard import Guard
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._metrics import Metrics
from specsteer.cloud_adapter._runner import Clock, Deadline, ModelRunner
from specsteer.cloud_adapter._verify import VerifierCore
from specsteer.cloud_adapter.protocol import GenerateRequest, TokenIds, VerifyRequest
from specsteer.privacy._receipts import ReceiptSigner

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_ENDPOINTS = "POST /v1/verify, POST /v1/generate, POST /v1/completions, GET /healthz, GET /metrics"


def create_app(
    core: VerifierCore,
    *,
    token: str | None,
    limits: ServerLimits | None = None,
    model_name: str | None = None,
    pool_size: int = 4,
    clock: Clock = time.monotonic,
    receipts: ReceiptSigner | None = None,
) -> FastAPI:
    """Build the reference server's FastAPI app around a verifier core.

    Args:
        core: the cloud's verify step (holds the LLM and, optionally, the public SLM copy).
        token: the bearer token every request except ``/healthz`` must carry; ``None`` turns
            authentication off (loopback use only).
        limits: request bounds; defaults to ``ServerLimits()``.
        model_name: the name ``/v1/completions`` serves (default: the LLM's name).
        pool_size: KV streams kept for ``/v1/completions``.
        clock: the time source of request deadlines (monotonic seconds; tests pass a fake).
        receipts: signs a receipt for each verify and generate request body (None: no receipts).

    Returns:
        The ASGI app, ready for uvicorn (see :func:`serve`).
    """
    lim = limits or ServerLimits()
    name = model_name or core.llm.name
    metrics = Metrics()
    runner = ModelRunner(lim.request_timeout_s, clock)
    app = FastAPI(title="specsteer cloud server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics = metrics
    _add_error_handlers(app)
    _add_model_routes(app, core, lim, runner, metrics, receipts)
    _add_completions(app, Completions(core.llm, lim, name, pool_size), runner)
    _add_service_routes(app, name, metrics)
    # Outermost user middleware: runs before routing and body parsing.
    app.add_middleware(Guard, token=token, max_body=lim.max_body_bytes, metrics=metrics)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers with the server's JSON error shape, naming what to change."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind)

    @app.exception_handler(DegenerateScoresError)
    async def _degenerate(_: Request, exc: DegenerateScoresError) -> JSONResponse:
        # The request's own settings left the model nothing to choose (the message says which).
        return error_response(400, f"cannot serve this request: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, f"no endpoint at this path; this server serves {_ENDPOINTS}")
        if exc.status_code == 405:
            return error_response(
                405, f"{request.method} is not allowed here; this server serves {_ENDPOINTS}"
            )
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, f"invalid request: {exc.errors()[:1]}")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.error("request failed inside the server: %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "the server failed on this request; see the server log")


def _parse(model: type[BaseModel], body: bytes) -> Any:
    """A request body as ``model``, or a 400 that says what is wrong with it."""
    if not body:
        raise ApiError(400, "the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise ApiError(400, f"invalid request: {summarize_validation(e)}") from e


def _verified(core: VerifierCore, req: VerifyRequest, lim: ServerLimits, metrics: Metrics) -> str:
    """The verify answer as JSON, or a 400 naming what makes the request unservable."""
    _check_verify_size(core.llm, req, lim.max_tokens)
    try:
        response = core.verify(req)
    except (ProtocolError, ValueError) as e:
        # ValueError covers pydantic rejecting an answer the request made impossible, and a
        # DegenerateScoresError (every token ruled out by the request's processing).
        raise ApiError(400, f"cannot verify this request: {_short(e)}") from e
    try:
        check_response(req, response)
    except ProtocolError as e:
        raise ApiError(
            400,
            f"this request makes the model's scores degenerate ({e}); check its temperature",
        ) from e
    metrics.observe_verify(req.n_draft, response.n_accepted)
    return response.model_dump_json()


def _add_model_routes(
    app: FastAPI,
    core: VerifierCore,
    lim: ServerLimits,
    runner: ModelRunner,
    metrics: Metrics,
    receipts: ReceiptSigner | None,
) -> None:
    """``/v1/verify`` and ``/v1/generate``: the protocol's two requests."""

    @app.post("/v1/verify")
    async def verify(request: Request) -> Response:
        received = await request.body()
        req: VerifyRequest = _parse(VerifyRequest, received)
        body = await runner.run(lambda _: _verified(core, req, lim, metrics))
        return Response(
            _receipted(body, received, req.receipt_prev, receipts), media_type="application/json"
        )

    @app.post("/v1/generate")
    async def generate(request: Request) -> Response:
        received = await request.body()
        req: GenerateRequest = _parse(GenerateRequest, received)

        def work(deadline: Deadline) -> str:
            _check_generate_size(core.llm, req, lim)
            return core.generate(req, check=deadline.check).model_dump_json()

        body = await runner.run(work, lim.generate_timeout_s)
        return Response(
            _receipted(body, received, req.receipt_prev, receipts), media_type="application/json"
        )


def _receipted(body: str, received: bytes, prev: str | None, receipts: ReceiptSigner | None) -> str:
    """The answer with the signed receipt for the exact bytes received (the device's witness)."""
    if receipts is None:
        return body
    return json.dumps({**json.loads(body), "receipt": receipts.sign(received, prev)})


def _add_completions(app: FastAPI, completions: Completions, runner: ModelRunner) -> None:
    """The vLLM-style ``/v1/completions`` subset."""

    @app.post("/v1/completions")
    async def complete(request: Request) -> JSONResponse:
        req: CompletionRequest = _parse(CompletionRequest, await request.body())

        return JSONResponse(await runner.run(lambda deadline: completions.answer(req, deadline)))


def _add_service_routes(app: FastAPI, name: str, metrics: Metrics) -> None:
    """``/healthz`` and ``/metrics``."""

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model": name}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return summarize_validation(e)
    return str(e)[:300]


def _check_generate_size(llm: ModelBackend, req: GenerateRequest, lim: ServerLimits) -> None:
    """Refuse generate requests beyond ``max_new_tokens`` or ``max_tokens`` in all."""
    if req.max_new_tokens > lim.max_new_tokens:
        raise ApiError(400, f"max_new_tokens must be <= {lim.max_new_tokens}")
    if sum(len(m.content) for m in req.prompt) > lim.max_tokens * 64:
        raise ApiError(400, f"the prompt exceeds the server's limit of {lim.max_tokens} tokens")
    n = len(llm.encode_chat([m.model_dump() for m in req.prompt])) + req.max_new_tokens
    if n > lim.max_tokens:
        raise ApiError(
            400,
            f"prompt + max_new_tokens hold {n} tokens, over the server's limit of {lim.max_tokens}",
        )


def _check_verify_size(llm: ModelBackend, req: VerifyRequest, max_tokens: int) -> None:
    """Refuse requests that would make the model read more than ``max_tokens`` tokens."""
    chars = sum(len(m.content) for m in req.prompt)
    if isinstance(req.prefix, TokenIds) and isinstance(req.draft, TokenIds):
        n = len(req.prefix.ids) + len(req.draft.ids)
    else:
        n = 0
        chars += len(getattr(req.prefix, "text", "")) + len(getattr(req.draft, "text", ""))
    if n > max_tokens or chars > max_tokens * 64:
        raise ApiError(400, f"the request exceeds the server's limit of {max_tokens} tokens")
    n += len(llm.encode_chat([m.model_dump() for m in req.prompt]))
    if n > max_tokens:
        raise ApiError(
            400, f"the request holds {n} tokens, over the server's limit of {max_tokens}"
        )
