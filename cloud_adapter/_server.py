"""The reference cloud server: FastAPI + uvicorn around :class:`VerifierCore`.

Endpoints:

* ``POST /v1/verify`` -- the wire protocol (stateless; KV caches are reused by token prefix);
* ``POST /v1/generate`` -- the cloud model's own answer (``cloud_only``), within
  ``ServerLimits.max_new_tokens`` and ``generate_timeout_s``;
* ``POST /v1/completions`` -- the subset of vLLM's completions API the OpenAI-compatible adapter
  uses (``prompt`` as text or token ids, ``max_tokens``, ``echo``, ``logprobs``,
  ``prompt_logprobs``, ``return_tokens_as_token_ids``), in vLLM's response shape;
* ``GET /healthz`` -- liveness (no token needed, reveals nothing);
* ``GET /metrics`` -- Prometheus text format.

Every error is JSON in vLLM's shape, ``{"error": {"message", "type", "param", "code"}}``, and bad
input always gets a 4xx with a message. Request bodies are never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from specsteer import fusion
from specsteer._errors import ConfigurationError, ProtocolError, SpecSteerError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._base import check_response
from specsteer.cloud_adapter._http import summarize_validation
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._verify import StreamPool, VerifierCore
from specsteer.cloud_adapter.protocol import GenerateRequest, TokenIds, VerifyRequest

__all__ = ["ServerLimits", "create_app", "load_backend", "run_server", "serve"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that need the bearer token (``/healthz`` stays open for liveness probes).
_PUBLIC_PATHS = frozenset({"/healthz"})
#: Paths with their own metric label; anything else is counted as "other".
_KNOWN_PATHS = frozenset({"/v1/verify", "/v1/generate", "/v1/completions", "/healthz", "/metrics"})
_ENDPOINTS = "POST /v1/verify, POST /v1/generate, POST /v1/completions, GET /healthz, GET /metrics"
#: Error types as vLLM names them (its ``ErrorResponse``: message, type, param, code).
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
    504: "TimeoutError",
}


def _error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """vLLM's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = kind or _ERROR_TYPES.get(status, "error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class ApiError(Exception):
    """An error answered as ``{"error": {"type", "message"}}`` with ``status``."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or _ERROR_TYPES.get(status, "error")


def _error(status: int, message: str, kind: str | None = None) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(_error_body(status, message, kind), status_code=status, headers=headers)


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(_error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- metrics -------------------------------------------------------------------------------------


class _Metrics:
    """Prometheus metrics in a registry of their own (several apps may share a process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "specsteer_requests",
            "HTTP requests served, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "specsteer_request_seconds",
            "Request latency in seconds, by endpoint.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.verified = Counter(
            "specsteer_draft_tokens_verified",
            "Draft tokens run through the ratio test.",
            registry=self.registry,
        )
        self.accepted = Counter(
            "specsteer_draft_tokens_accepted",
            "Draft tokens the ratio test accepted.",
            registry=self.registry,
        )
        self.acceptance = Gauge(
            "specsteer_acceptance_rate",
            "Accepted / verified draft tokens since the server started.",
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._n_verified = 0
        self._n_accepted = 0

    def observe_verify(self, drafted: int, accepted: int) -> None:
        self.verified.inc(drafted)
        self.accepted.inc(accepted)
        with self._lock:
            self._n_verified += drafted
            self._n_accepted += accepted
            if self._n_verified:
                self.acceptance.set(self._n_accepted / self._n_verified)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


# -- the guard: auth, body size, metrics ---------------------------------------------------------


class _Guard:
    """ASGI middleware: bearer auth, body-size limit, request metrics.

    It runs before routing and body parsing, so an unauthenticated or oversized request costs
    the server nothing beyond its headers (and at most ``max_body_bytes`` of body).
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int, metrics: _Metrics):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        label = path if path in _KNOWN_PATHS else "other"
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
        if self.token is not None and path not in _PUBLIC_PATHS:
            auth = headers.get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
            if not ok:
                await _send_error(
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
                await _send_error(send, 400, "the Content-Length header is not a number")
                return
            if length > self.max_body:
                await _send_error(
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
                await _send_error(send, 413, f"the request body exceeds {self.max_body} bytes")
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


# -- /v1/completions (vLLM subset) ---------------------------------------------------------------


class CompletionRequest(BaseModel):
    """The subset of vLLM's ``/v1/completions`` request this server implements.

    As in vLLM, fields it does not know are accepted and ignored, and ``-1`` log-probabilities
    mean the whole vocabulary (refused unless ``max_logprobs`` allows that many).
    """

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, max_length=256)
    prompt: str | list[Annotated[int, Field(ge=0)]] | list[str] = Field(
        description="Text, token ids of the served tokenizer, or a batch of texts (one choice "
        "each, as vLLM answers)."
    )
    max_tokens: int = Field(default=16, ge=0)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=-1)
    prompt_logprobs: int | None = Field(default=None, ge=-1)
    temperature: float = Field(default=1.0, ge=0.0, le=100.0)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    n: Literal[1] = 1
    stream: Literal[False] = False
    return_tokens_as_token_ids: bool = False
    add_special_tokens: bool = Field(
        default=True,
        description="vLLM's flag; this server never adds special tokens to a text prompt, as "
        "vLLM with add_special_tokens=false (the adapter sends false).",
    )

    @field_validator("temperature")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v


def _lp(value: float) -> float:
    """A log-probability as vLLM writes it: ``-inf`` clamped to -9999."""
    return max(float(value), -9999.0)


class _Completions:
    """Runs completion requests on the cloud model, vLLM style."""

    def __init__(self, llm: ModelBackend, limits: ServerLimits, model_name: str, pool_size: int):
        self.llm = llm
        self.limits = limits
        self.model_name = model_name
        self.pool = StreamPool(llm, pool_size)

    def check(self, req: CompletionRequest) -> list[int]:
        """Token ids of the prompt, after checking the request against the limits."""
        lim = self.limits
        if req.model is not None and req.model != self.model_name:
            raise ApiError(
                404,
                f"model {req.model!r} is not served here; use {self.model_name!r}",
                "model_not_found",
            )
        vocab = self.llm.vocab_size
        for name, value in (("logprobs", req.logprobs), ("prompt_logprobs", req.prompt_logprobs)):
            n = vocab if value == -1 else value
            if n is not None and n > lim.max_logprobs:
                raise ApiError(
                    400,
                    f"Requested {name} of {n}, which is greater than max allowed: "
                    f"{lim.max_logprobs}",
                )
        if req.max_tokens > lim.max_completion_tokens:
            raise ApiError(400, f"max_tokens must be <= {lim.max_completion_tokens}")
        if isinstance(req.prompt, str):
            if len(req.prompt) > lim.max_tokens * 64:
                raise ApiError(400, f"the prompt is longer than {lim.max_tokens} tokens")
            ids = self.llm.encode(req.prompt)
        else:
            ids = [int(i) for i in req.prompt]  # a batch of texts is split before this
            bad = next((i for i in ids if i >= vocab), None)
            if bad is not None:
                raise ApiError(400, f"prompt token id {bad} is outside the vocabulary ({vocab})")
        if not ids:
            raise ApiError(400, "the prompt is empty")
        if len(ids) + req.max_tokens > lim.max_tokens:
            raise ApiError(
                400, f"prompt ({len(ids)} tokens) + max_tokens exceeds {lim.max_tokens} tokens"
            )
        return ids

    def run(self, req: CompletionRequest, ids: list[int]) -> dict[str, Any]:
        """Score (and optionally extend) the prompt; build vLLM's response dict."""
        need_rows = req.prompt_logprobs is not None or (req.echo and req.logprobs is not None)
        if need_rows:
            # Every position's distribution is needed: encode the whole prompt (as vLLM does
            # for prompt_logprobs, which bypass its prefix cache).
            stream = self.llm.stream()
            rows = fusion.log_probs(stream.logits(ids[:1], ids[1:]))  # [P, V]
            last = rows[-1]
        else:
            stream = self.pool.acquire(ids)
            rows = None
        try:
            if rows is None:
                last = fusion.log_probs(stream.logits(ids)[0])  # [V]
            gen = torch.Generator().manual_seed(req.seed) if req.seed is not None else None
            eos = self.llm.eos_token_ids
            out: list[int] = []
            out_rows: list[torch.Tensor] = []
            finish = "length"
            while len(out) < req.max_tokens:
                scores = last.double() / req.temperature if req.temperature > 0 else last
                if req.temperature == 0 or not torch.isfinite(scores.max()):
                    # temperature -> 0 is the argmax (also where the division underflows)
                    tok = int(torch.argmax(last).item())
                else:
                    tok = fusion.sample_or_argmax(scores, False, gen)
                out.append(tok)
                out_rows.append(last)
                if tok in eos:
                    finish = "stop"
                    break
                if len(out) < req.max_tokens:
                    last = fusion.log_probs(stream.logits(ids + out)[0])
        finally:
            if rows is None:
                self.pool.release(stream)
        prompt_lp = None
        if req.prompt_logprobs is not None:
            assert rows is not None
            n_prompt = self._count(req.prompt_logprobs)
            prompt_lp = [None] + [
                self._entry(rows[j - 1], ids[j], n_prompt) for j in range(1, len(ids))
            ]
        logprobs = None
        if req.logprobs is not None:
            if req.echo:
                assert rows is not None
                toks = ids + out
                steps: list[torch.Tensor | None] = [None, *rows[:-1], *out_rows]
            else:
                toks, steps = out, list(out_rows)
            n_top = self._count(req.logprobs)
            logprobs = self._logprobs(toks, steps, n_top, req.return_tokens_as_token_ids)
        text = self.llm.decode(out)
        if req.echo:  # vLLM echoes a text prompt as sent, and token ids decoded
            text = (req.prompt if isinstance(req.prompt, str) else self.llm.decode(ids)) + text
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                    "stop_reason": None,
                    "prompt_logprobs": prompt_lp,
                }
            ],
            "usage": {
                "prompt_tokens": len(ids),
                "total_tokens": len(ids) + len(out),
                "completion_tokens": len(out),
                "prompt_tokens_details": None,
            },
        }

    def _count(self, n: int) -> int:
        """A requested log-probability count; ``-1`` is the whole vocabulary, as in vLLM."""
        return self.llm.vocab_size if n == -1 else n

    def _token_str(self, tok: int, as_id: bool) -> str:
        return f"token_id:{tok}" if as_id else self.llm.decode([tok], skip_special_tokens=False)

    def _entry(self, row: torch.Tensor, tok: int, n: int) -> dict[str, dict[str, Any]]:
        """vLLM's prompt-logprobs entry: the actual token first, then the top ``n``."""
        entry: dict[str, dict[str, Any]] = {}
        rank = int((row > row[tok]).sum().item()) + 1
        entry[str(tok)] = {
            "logprob": _lp(row[tok].item()),
            "rank": rank,
            "decoded_token": self.llm.decode([tok], skip_special_tokens=False),
        }
        if n:
            values, top = torch.topk(row, min(n, row.shape[-1]))
            for r, (v, i) in enumerate(zip(values.tolist(), top.tolist(), strict=True), start=1):
                entry.setdefault(
                    str(i),
                    {
                        "logprob": _lp(v),
                        "rank": r,
                        "decoded_token": self.llm.decode([i], skip_special_tokens=False),
                    },
                )
        return entry

    def _logprobs(
        self, toks: list[int], steps: list[torch.Tensor | None], n: int, as_id: bool
    ) -> dict[str, Any]:
        """OpenAI's ``logprobs`` object: per token its logprob and the top ``n`` (+ itself)."""
        offsets: list[int] = []
        token_lps: list[float | None] = []
        tokens: list[str] = []
        tops: list[dict[str, float] | None] = []
        pos = 0
        for tok, row in zip(toks, steps, strict=True):
            s = self._token_str(tok, as_id)
            offsets.append(pos)
            pos += len(s)
            tokens.append(s)
            if row is None:
                token_lps.append(None)
                tops.append(None)
                continue
            token_lps.append(_lp(row[tok].item()))
            top: dict[str, float] = {s: _lp(row[tok].item())}
            if n:
                values, ids = torch.topk(row, min(n, row.shape[-1]))
                for v, i in zip(values.tolist(), ids.tolist(), strict=True):
                    top.setdefault(self._token_str(i, as_id), _lp(v))
            tops.append(top)
        return {
            "text_offset": offsets,
            "token_logprobs": token_lps,
            "tokens": tokens,
            "top_logprobs": tops,
        }


# -- the app -------------------------------------------------------------------------------------


class _ModelRunner:
    """Runs model work one request at a time, within each request's deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        seconds = timeout or self.timeout
        deadline = time.monotonic() + seconds

        def guarded() -> Any:
            # Wait for the model no longer than the request's own deadline.
            if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise ApiError(504, f"the server is busy; no model slot within {seconds} s")
            try:
                return fn()
            finally:
                self._lock.release()

        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(guarded, abandon_on_cancel=True)
        except TimeoutError as e:
            raise ApiError(504, f"the request did not finish within {seconds} s") from e


def create_app(
    core: VerifierCore,
    *,
    token: str | None,
    limits: ServerLimits | None = None,
    model_name: str | None = None,
    pool_size: int = 4,
) -> FastAPI:
    """Build the reference server's FastAPI app around a verifier core.

    Args:
        core: the cloud's verify step (holds the LLM and, optionally, the public SLM copy).
        token: the bearer token every request except ``/healthz`` must carry; ``None`` turns
            authentication off (loopback use only).
        limits: request bounds; defaults to ``ServerLimits()``.
        model_name: the name ``/v1/completions`` serves (default: the LLM's name).
        pool_size: KV streams kept for ``/v1/completions``.

    Returns:
        The ASGI app, ready for uvicorn (see :func:`serve`).
    """
    lim = limits or ServerLimits()
    name = model_name or core.llm.name
    metrics = _Metrics()
    runner = _ModelRunner(lim.request_timeout_s)
    app = FastAPI(title="specsteer cloud server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics = metrics
    _add_error_handlers(app)
    _add_model_routes(app, core, lim, runner, metrics)
    _add_completions(app, _Completions(core.llm, lim, name, pool_size), runner)
    _add_service_routes(app, name, metrics)
    # Outermost user middleware: runs before routing and body parsing.
    app.add_middleware(_Guard, token=token, max_body=lim.max_body_bytes, metrics=metrics)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers with the server's JSON error shape, naming what to change."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no endpoint at this path; this server serves {_ENDPOINTS}")
        if exc.status_code == 405:
            return _error(
                405, f"{request.method} is not allowed here; this server serves {_ENDPOINTS}"
            )
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, f"invalid request: {exc.errors()[:1]}")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.error("request failed inside the server: %s", type(exc).__name__, exc_info=exc)
        return _error(500, "the server failed on this request; see the server log")


def _parse(model: type[BaseModel], body: bytes) -> Any:
    """A request body as ``model``, or a 400 that says what is wrong with it."""
    if not body:
        raise ApiError(400, "the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise ApiError(400, f"invalid request: {summarize_validation(e)}") from e


def _verified(core: VerifierCore, req: VerifyRequest, lim: ServerLimits, metrics: _Metrics) -> str:
    """The verify answer as JSON, or a 400 naming what makes the request unservable."""
    _check_verify_size(core.llm, req, lim.max_tokens)
    try:
        response = core.verify(req)
    except (ProtocolError, ValueError) as e:
        # ValueError covers pydantic rejecting an answer the request made impossible
        # (e.g. a temperature so small that every log-probability overflows).
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
    app: FastAPI, core: VerifierCore, lim: ServerLimits, runner: _ModelRunner, metrics: _Metrics
) -> None:
    """``/v1/verify`` and ``/v1/generate``: the protocol's two requests."""

    @app.post("/v1/verify")
    async def verify(request: Request) -> Response:
        req: VerifyRequest = _parse(VerifyRequest, await request.body())
        body = await runner.run(lambda: _verified(core, req, lim, metrics))
        return Response(body, media_type="application/json")

    @app.post("/v1/generate")
    async def generate(request: Request) -> Response:
        req: GenerateRequest = _parse(GenerateRequest, await request.body())

        def work() -> str:
            _check_generate_size(core.llm, req, lim)
            return core.generate(req).model_dump_json()

        body = await runner.run(work, lim.generate_timeout_s)
        return Response(body, media_type="application/json")


def _add_completions(app: FastAPI, completions: _Completions, runner: _ModelRunner) -> None:
    """The vLLM-style ``/v1/completions`` subset."""

    @app.post("/v1/completions")
    async def complete(request: Request) -> JSONResponse:
        req: CompletionRequest = _parse(CompletionRequest, await request.body())

        def work() -> dict[str, Any]:
            if not (isinstance(req.prompt, list) and req.prompt and isinstance(req.prompt[0], str)):
                return completions.run(req, completions.check(req))
            parts = [req.model_copy(update={"prompt": p}) for p in req.prompt]
            return _batch([completions.run(r, completions.check(r)) for r in parts])

        return JSONResponse(await runner.run(work))


def _add_service_routes(app: FastAPI, name: str, metrics: _Metrics) -> None:
    """``/healthz`` and ``/metrics``."""

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model": name}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _batch(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer for a batch of prompts: their choices in order, usage summed (as vLLM)."""
    out = dict(answers[0])
    out["choices"] = [{**a["choices"][0], "index": i} for i, a in enumerate(answers)]
    keys = ("prompt_tokens", "total_tokens", "completion_tokens")
    out["usage"] = {
        **answers[0]["usage"],
        **{k: sum(a["usage"][k] for a in answers) for k in keys},
    }
    return out


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


# -- running it ----------------------------------------------------------------------------------


def load_backend(path_or_backend: str | ModelBackend) -> ModelBackend:
    """A model backend from a local HF model folder or a GGUF file (or pass one through).

    Raises:
        InvalidInputError: the path is neither.
        ModelLoadError: the model could not be loaded.
    """
    if isinstance(path_or_backend, ModelBackend):
        return path_or_backend
    from pathlib import Path

    from specsteer.backends._transformers import TransformersBackend

    path = Path(path_or_backend).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return TransformersBackend.from_gguf(path)
    return TransformersBackend.from_pretrained(path)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket (``port=0`` picks a free port; read it from ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {e}") from e
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app: FastAPI, limits: ServerLimits, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - uvicorn is a declared dependency
        from specsteer._errors import MissingDependencyError

        raise MissingDependencyError("uvicorn", "server", "the reference cloud server") from e
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # access lines carry nothing private, but nothing is needed either
        limit_concurrency=limits.max_concurrency,
        timeout_keep_alive=30,
        lifespan="off",
    )
    return uvicorn.Server(config)


def serve(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run ``app`` with uvicorn until interrupted.

    Args:
        app: from :func:`create_app`.
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one (passed to ``on_ready`` in the URL).
        limits: the limits the app was built with (for uvicorn's concurrency cap).
        log_level: uvicorn's log level.
        on_ready: called with the server's base URL once it is listening.
    """
    lim = limits or ServerLimits()
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
    server = _uvicorn_server(app, lim, log_level)
    if on_ready is not None:
        on_ready(url)
    logger.info("specsteer cloud server listening on %s", url)
    server.run(sockets=[sock])


def run_server(
    llm: str | ModelBackend,
    *,
    slm: str | ModelBackend | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    limits: ServerLimits | None = None,
    model_name: str | None = None,
    pool_size: int = 4,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Load the cloud model(s) and serve them until interrupted.

    Args:
        llm: the cloud model: a backend, a local HF model folder, or a ``.gguf`` file.
        slm: optionally a copy of the public device model (lets devices send only token ids).
        host: the address to listen on; anything but loopback requires a ``token``.
        port: the port (0 picks a free one).
        token: the bearer token clients must send.
        limits: request bounds.
        model_name: the name served on ``/v1/completions`` (default: the model's name).
        pool_size: KV streams kept per model.
        log_level: uvicorn's log level.
        on_ready: called with the base URL once the server listens.

    Raises:
        ConfigurationError: a public address without a token, or a port in use.
    """
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without a bearer token; pass token=... "
            "(or listen on 127.0.0.1)"
        )
    core = VerifierCore(
        load_backend(llm), load_backend(slm) if slm is not None else None, pool_size=pool_size
    )
    lim = limits or ServerLimits()
    app = create_app(core, token=token, limits=lim, model_name=model_name, pool_size=pool_size)
    serve(app, host=host, port=port, limits=lim, log_level=log_level, on_ready=on_ready)


class BackgroundServer:
    """Serves an app from a thread of this process (for tests, examples and benchmarks).

    Use as a context manager; :attr:`url` is the base URL once started.

    Args:
        app: from :func:`create_app`.
        host: the address to listen on.
        port: 0 picks a free port.
        limits: the limits the app was built with.
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits | None = None,
    ) -> None:
        self._sock = bind_socket(host, port)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        self._server = _uvicorn_server(app, limits or ServerLimits(), "warning")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SpecSteerError(f"the background server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
