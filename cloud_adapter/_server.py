"""Running the reference server: uvicorn on a bound socket, in the foreground (:func:`serve`,
:func:`run_server`) or in a background thread of this process (:class:`BackgroundServer`)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from specsteer._errors import ConfigurationError, SpecSteerError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._app import create_app
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._net import is_loopback
from specsteer.cloud_adapter._verify import VerifierCore
from specsteer.privacy._receipts import ReceiptSigner

__all__ = [
    "BackgroundServer",
    "bind_socket",
    "is_loopback",
    "load_backend",
    "run_server",
    "serve",
]

logger = logging.getLogger(__name__)


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
        # uvicorn's own logging config would reconfigure (and close) the host process's handlers
        log_config=None,
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
    receipts: ReceiptSigner | None = None,
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
        receipts: signs a receipt for every request body (default: this machine's receipt key,
            made on first use; its key id is ``receipts.key_id``).

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
    signer = receipts if receipts is not None else ReceiptSigner.for_this_machine()
    app = create_app(
        core, token=token, limits=lim, model_name=model_name, pool_size=pool_size, receipts=signer
    )
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
