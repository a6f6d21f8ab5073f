"""Serving the gateway: where it listens, and the bearer token it asks for off loopback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from specsteer._assistant import Assistant
from specsteer._errors import ConfigurationError
from specsteer.apps.gateway._app import create_gateway

__all__ = ["TOKEN_ENV", "gateway_token", "run_gateway"]

#: The environment variable holding the gateway's bearer token.
TOKEN_ENV = "SPECSTEER_GATEWAY_TOKEN"


def gateway_token(token_file: Path | None = None) -> str | None:
    """The gateway's bearer token: the first line of ``token_file``, else ``$SPECSTEER_GATEWAY_TOKEN``,
    else None. Never a command-line value (it would show in the process list).

    Raises:
        ConfigurationError: the file cannot be read or holds no token.
    """
    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigurationError(f"cannot read the token file {token_file}: {e}") from e
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigurationError(f"the token file {token_file} is empty; put the token on line 1")
    return token


def _host_names(host: str, port: int) -> set[str]:
    from specsteer.cloud_adapter._server import is_loopback

    if not is_loopback(host):
        return set()  # a public bind: its names are not knowable here; the token guards it
    return {f"{name}:{port}" for name in (host, "127.0.0.1", "localhost", "[::1]")}


def run_gateway(
    assistant: Assistant,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    model_name: str = "specsteer",
    default_user: str | None = None,
    max_tokens: int = 2048,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the gateway until interrupted.

    Args:
        assistant: answers the requests (see :func:`create_gateway`).
        host: the address to listen on; loopback by default. Any other needs ``token``.
        port: the port; 0 picks a free one.
        token: the bearer token clients must send (see :func:`gateway_token`).
        model_name, default_user, max_tokens: as for :func:`create_gateway`.
        log_level: uvicorn's log level.
        on_ready: called with the base URL (``http://127.0.0.1:8080/v1``) once it listens.

    Raises:
        ConfigurationError: a non-loopback address without a token, or the port is taken.
    """
    from specsteer.cloud_adapter import serve
    from specsteer.cloud_adapter._server import is_loopback

    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without a bearer token: the answers draw on private "
            f"memories; set ${TOKEN_ENV} or pass --token-file"
        )
    hosts: set[str] = set()
    app = create_gateway(
        assistant,
        model_name=model_name,
        default_user=default_user,
        token=token,
        hosts=hosts,
        max_tokens=max_tokens,
    )

    def ready(url: str) -> None:
        hosts.update(_host_names(host, int(url.rsplit(":", 1)[1])))
        if on_ready is not None:
            on_ready(url + "/v1")

    serve(app, host=host, port=port, log_level=log_level, on_ready=ready)
