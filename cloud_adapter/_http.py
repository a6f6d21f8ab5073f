"""``HttpVerifier``: the device's client for the reference server, and the HTTP plumbing it shares.

Every failure surfaces as a typed :class:`~specsteer.CloudError` (or its
:class:`~specsteer.ProtocolError` branch), so the engine finishes the session on the device:

* connect errors, timeouts and 502/503/504 are retried a bounded number of times with jittered
  exponential backoff (a verify call is idempotent: the seed travels in the request);
* each attempt has a hard wall-clock deadline over connecting, sending, the response headers and
  the body (:mod:`._deadline`) -- a server that trickles bytes cannot hold a session;
* after ``breaker_threshold`` failed calls in a row the circuit opens and calls fail at once for
  ``breaker_cooldown`` seconds, so later sessions do not each wait out the same dead server;
* every response is validated (pydantic, then :func:`check_response`) before it is returned.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

import httpx
from pydantic import ValidationError

from specsteer._errors import (
    CloudError,
    ConfigurationError,
    ProtocolError,
    summarize_validation,
)
from specsteer.cloud_adapter._base import CloudVerifier, check_generate_response, check_response
from specsteer.cloud_adapter._deadline import attempt_deadline, deadline_client
from specsteer.cloud_adapter._net import is_loopback
from specsteer.cloud_adapter.protocol import (
    GenerateRequest,
    GenerateResponse,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["CircuitBreaker", "HttpVerifier"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Status codes worth another attempt: the request never reached a healthy model.
RETRY_STATUS = frozenset({502, 503, 504})
#: Largest response body accepted by default; a verify response is a few kilobytes.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class _Retryable(CloudError):
    """A failure another attempt may cure (connect error, timeout, 502/503/504)."""


class CircuitBreaker:
    """Fails fast after repeated failures, then lets one trial call through after a cool-down.

    Args:
        threshold: consecutive failed calls that open the circuit.
        cooldown: seconds the circuit stays open before a trial call is allowed.
        clock: monotonic time source (injectable for tests).
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ConfigurationError("breaker threshold must be >= 1")
        if cooldown < 0:
            raise ConfigurationError("breaker cooldown must be >= 0 seconds")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        """``closed`` (calls pass), ``open`` (calls fail fast) or ``half-open`` (one trial)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.cooldown:
                return "half-open"
            return "open"

    def before_call(self) -> None:
        """Raise :class:`CloudError` when the circuit is open; admit one trial when half-open."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited >= self.cooldown and not self._trial:
                self._trial = True
                return
            left = max(0.0, self.cooldown - waited)
            raise CloudError(
                f"the cloud failed {self._failures} times in a row; not calling it for another "
                f"{left:.1f} s (circuit open). Check the server, or wait for the cool-down"
            )

    def record_success(self) -> None:
        """Close the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def record_failure(self) -> None:
        """Count a failed call; open (or re-open) the circuit at the threshold."""
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self.threshold:
                self._opened_at = self._clock()
            self._trial = False


class HttpChannel:
    """POSTs JSON to one server with keep-alive, deadlines, retries and a circuit breaker.

    Shared by :class:`HttpVerifier` and the OpenAI-compatible adapter.

    Args:
        base_url: the server root, e.g. ``http://127.0.0.1:8000``; a root ending in ``/v1``
            (as OpenAI clients are configured) is accepted too.
        token: bearer token sent in ``Authorization``.
        timeout: seconds one attempt may take, from connecting to the last byte of the answer.
        connect_timeout: seconds to establish a connection (capped by ``timeout``).
        retries: extra attempts after a retryable failure.
        backoff: base delay in seconds; attempt ``i`` waits about ``backoff * 2**i`` (jittered).
        max_backoff: cap on one delay.
        max_response_bytes: largest answer accepted (a call may ask for a larger cap).
        breaker: the circuit breaker (a fresh one by default).
        client: an ``httpx.Client`` to use (the caller keeps ownership). The deadline is then
            checked only between body chunks: install none of your own for untrusted servers.
        transport: an ``httpx`` transport for a client built here (tests see the exact bytes).
        rng: randomness for the jitter.
        insecure_http: allow plain ``http://`` to a host that is not loopback; without it such
            a URL is refused, since the bearer token and the drafts would cross the network
            readable by anyone on the path.

    Raises:
        ConfigurationError: a malformed URL or setting, or plain ``http://`` to another host
            without ``insecure_http``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        breaker: CircuitBreaker | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        insecure_http: bool = False,
    ) -> None:
        if not (timeout > 0 and connect_timeout > 0):
            raise ConfigurationError("timeouts must be > 0 seconds")
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigurationError("retries and backoff must be >= 0")
        if max_response_bytes < 1024:
            raise ConfigurationError("max_response_bytes must be >= 1024")
        if client is not None and transport is not None:
            raise ConfigurationError("pass either client or transport, not both")
        self.base_url = _root(base_url, insecure_http)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_response_bytes = max_response_bytes
        self.breaker = breaker or CircuitBreaker()
        self._rng = rng or random.Random()
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._owns_client = client is None
        limits = httpx.Limits(max_keepalive_connections=8, keepalive_expiry=30.0)
        if client is None:
            client = (
                httpx.Client(transport=transport, limits=limits)
                if transport is not None
                else deadline_client(limits)
            )
        self._client = client
        #: Attempts made (including retries), for stats and tests.
        self.attempts = 0
        self._sleep = time.sleep

    def url(self, path: str) -> str:
        """The full URL of ``path`` (``/v1/...``) on this server."""
        if self.base_url.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        return f"{self.base_url}{path}"

    def call(
        self,
        path: str,
        body: bytes,
        parse: Callable[[bytes], T],
        *,
        max_response_bytes: int | None = None,
        timeout: float | None = None,
    ) -> T:
        """POST ``body`` to ``path``, retrying as configured, and ``parse`` the 200 response.

        Args:
            max_response_bytes: a larger cap for this call's answer (never a smaller one).
            timeout: this call's per-attempt deadline in seconds (default the channel's).

        Raises:
            CloudError: unreachable, timed out, refused, circuit open, or a non-200 answer.
            ProtocolError: the response was malformed (raised by ``parse``) or too large.
        """
        cap = max(self.max_response_bytes, max_response_bytes or 0)
        self.breaker.before_call()
        try:
            result = parse(self._post_with_retries(path, body, cap, timeout or self.timeout))
        except CloudError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result

    def _post_with_retries(self, path: str, body: bytes, cap: int, timeout: float) -> bytes:
        attempt = 0
        while True:
            try:
                return self._post_once(path, body, cap, timeout)
            except _Retryable as e:
                if attempt >= self.retries:
                    raise CloudError(f"{e} (after {attempt + 1} attempts)") from e
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                delay *= self._rng.uniform(0.5, 1.0)
                logger.info(
                    "cloud attempt %d failed (%s); retrying in %.3f s", attempt + 1, e, delay
                )
                self._sleep(delay)
                attempt += 1

    def _post_once(self, path: str, body: bytes, cap: int, timeout: float) -> bytes:
        self.attempts += 1
        url = self.url(path)
        with attempt_deadline(timeout) as deadline:
            try:
                status, data = self._exchange(url, body, deadline, cap, timeout)
            except httpx.TimeoutException as e:
                if time.monotonic() >= deadline:
                    raise _Retryable(
                        f"{url} timed out: no complete answer within {timeout} s"
                    ) from e
                raise _Retryable(f"{url} timed out ({type(e).__name__})") from e
            except httpx.TransportError as e:  # connect refused, reset, closed mid-response, ...
                raise _Retryable(f"could not reach {url}: {type(e).__name__}: {e}") from e
            except httpx.HTTPError as e:
                raise CloudError(f"HTTP request to {url} failed: {type(e).__name__}: {e}") from e
        return _answer(url, status, data)

    def _exchange(
        self, url: str, body: bytes, deadline: float, cap: int, seconds: float
    ) -> tuple[int, bytes]:
        """One POST: the status and the whole body, within ``deadline`` and ``cap`` bytes."""
        timeout = httpx.Timeout(seconds, connect=self.connect_timeout)
        with self._client.stream(
            "POST", url, content=body, headers=self._headers, timeout=timeout
        ) as resp:
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise ProtocolError(
                        f"the response from {url} exceeds {cap} bytes; raise "
                        "max_response_bytes if the server is trusted"
                    )
                # Also checked here for clients built elsewhere, whose sockets know no deadline.
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the attempt's deadline passed")
                chunks.append(chunk)
            return resp.status_code, b"".join(chunks)

    def close(self) -> None:
        """Close the connection pool (when this object built it)."""
        if self._owns_client:
            self._client.close()


def _root(base_url: str, insecure_http: bool = False) -> str:
    """``base_url`` checked and without a trailing slash."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as e:
        raise ConfigurationError(f"invalid base_url {base_url!r}: {e}") from e
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url must be an http(s) URL with a host, like http://127.0.0.1:8000; "
            f"got {base_url!r}"
        )
    if url.scheme == "http" and not is_loopback(url.host) and not insecure_http:
        raise ConfigurationError(
            f"refusing to send the bearer token and the drafts to {url.host} over plain http: "
            "anyone on the network path could read them; use an https:// URL (e.g. a "
            "TLS-terminating proxy in front of the server), or pass insecure_http=True if "
            "this network is trusted"
        )
    return str(url).rstrip("/")


def _answer(url: str, status: int, data: bytes) -> bytes:
    """The body of a 200 answer; any other status as the matching typed error."""
    if status == 200:
        return data
    message = _error_message(data)
    if status in RETRY_STATUS:
        raise _Retryable(f"{url} answered {status}: {message}")
    if status == 401:
        raise CloudError(f"{url} refused the token (401): {message}; check the bearer token")
    if 400 <= status < 500:
        raise ProtocolError(f"{url} rejected the request ({status}): {message}")
    raise CloudError(f"{url} failed ({status}): {message}")


def _error_message(data: bytes) -> str:
    """The ``error.message`` of a JSON error body, else a short excerpt of the body."""
    import json

    try:
        doc = json.loads(data)
        msg = doc["error"]["message"]
        if isinstance(msg, str):
            return msg[:500]
    except (ValueError, KeyError, TypeError):
        pass
    text = data[:200].decode("utf-8", "replace").strip()
    return text or "(empty body)"


class HttpAdapter(CloudVerifier):
    """What the HTTP adapters share: one :class:`HttpChannel`, its breaker, ``verify`` as
    ``transmit(encode(...))``, and closing the channel."""

    channel: HttpChannel

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this server."""
        return self.channel.breaker

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        return self.transmit(request, self.encode(request))

    def close(self) -> None:
        self.channel.close()


class HttpVerifier(HttpAdapter):
    """Verifies drafts with the reference server (``POST /v1/verify``) over HTTP.

    Generation (``cloud_only``) goes to ``POST /v1/generate``.

    Args:
        base_url: the server root, e.g. ``http://127.0.0.1:8000`` (``.../v1`` works too).
        token: the server's bearer token.
        timeout: seconds one attempt may take, from connecting to the last byte of the answer.
        generate_timeout: the same for a generate call, which writes a whole answer.
        connect_timeout: seconds to establish a connection.
        retries: extra attempts after a connect error, timeout or 502/503/504.
        backoff: base backoff delay in seconds (doubled per attempt, jittered).
        breaker_threshold: consecutive failed calls that open the circuit.
        breaker_cooldown: seconds the open circuit fails calls without trying.
        breaker_clock: the circuit breaker's monotonic time source (injectable for tests).
        vocab_size: the device vocabulary size; top-k ids at or above it are rejected.
        client: an ``httpx.Client`` to reuse (the caller keeps ownership).
        transport: an ``httpx`` transport (e.g. ``httpx.MockTransport``) for the client built here.
        insecure_http: allow plain ``http://`` to a host that is not loopback (the token and
            drafts then travel unencrypted); refused without it.

    Raises:
        ConfigurationError: a malformed URL or out-of-range setting, or plain ``http://`` to
            another host without ``insecure_http``.
    """

    path = "/v1/verify"
    generate_path = "/v1/generate"
    can_generate = True
    scores_every_position = True

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        generate_timeout: float = 300.0,
        connect_timeout: float = 3.0,
        retries: int = 2,
        backoff: float = 0.05,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        breaker_clock: Callable[[], float] = time.monotonic,
        vocab_size: int | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        insecure_http: bool = False,
    ) -> None:
        self.channel = HttpChannel(
            base_url,
            token=token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            backoff=backoff,
            breaker=CircuitBreaker(breaker_threshold, breaker_cooldown, clock=breaker_clock),
            client=client,
            transport=transport,
            insecure_http=insecure_http,
        )
        if not generate_timeout > 0:
            raise ConfigurationError("generate_timeout must be > 0 seconds")
        self.generate_timeout = generate_timeout
        self.vocab_size = vocab_size
        self.destination = self.channel.base_url
        # The reference server computes on a CPU: on a loopback address, this machine's.
        self.computes_here = is_loopback(httpx.URL(self.channel.base_url).host)

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        def parse(data: bytes) -> VerifyResponse:
            try:
                response = VerifyResponse.model_validate_json(data)
            except ValidationError as e:
                raise ProtocolError(f"malformed verify response: {summarize_validation(e)}") from e
            return check_response(request, response, self.vocab_size)

        return self.channel.call(self.path, wire, parse)

    def transmit_generate(self, request: GenerateRequest, wire: bytes) -> GenerateResponse:
        def parse(data: bytes) -> GenerateResponse:
            try:
                response = GenerateResponse.model_validate_json(data)
            except ValidationError as e:
                raise ProtocolError(
                    f"malformed generate response: {summarize_validation(e)}"
                ) from e
            return check_generate_response(request, response, self.vocab_size)

        return self.channel.call(self.generate_path, wire, parse, timeout=self.generate_timeout)
