"""The cloud side: wire protocol, the CloudVerifier seam and its adapters, the reference server.

The server and its benchmark need the ``server`` extra (FastAPI, uvicorn, prometheus-client);
they are imported on first use, so the device side never pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specsteer.cloud_adapter._base import (
    CloudVerifier,
    ForwardingVerifier,
    check_generate_response,
    check_response,
)
from specsteer.cloud_adapter._http import CircuitBreaker, HttpVerifier
from specsteer.cloud_adapter._inprocess import InProcessVerifier
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._netsim import SimulatedNetwork
from specsteer.cloud_adapter._openai import OpenAICompatibleVerifier
from specsteer.cloud_adapter._verify import StreamPool, VerifierCore
from specsteer.cloud_adapter.protocol import (
    PROTOCOL_VERSION,
    ChatMessage,
    DraftScores,
    GenerateParams,
    GenerateRequest,
    GenerateResponse,
    GenerateUsage,
    Samples,
    Text,
    TokenIds,
    TopK,
    Usage,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
)

__all__ = [
    "PROTOCOL_VERSION",
    "BackgroundServer",
    "ChatMessage",
    "CircuitBreaker",
    "CloudVerifier",
    "DraftScores",
    "ForwardingVerifier",
    "GenerateParams",
    "GenerateRequest",
    "GenerateResponse",
    "GenerateUsage",
    "HttpVerifier",
    "InProcessVerifier",
    "OpenAICompatibleVerifier",
    "Samples",
    "ServerBenchResult",
    "ServerLimits",
    "SimulatedNetwork",
    "StreamPool",
    "Text",
    "TokenIds",
    "TopK",
    "Usage",
    "VerifierCore",
    "VerifyParams",
    "VerifyRequest",
    "VerifyResponse",
    "check_generate_response",
    "check_response",
    "create_app",
    "load_backend",
    "render_markdown",
    "run_server",
    "run_server_bench",
    "serve",
]

if TYPE_CHECKING:
    from specsteer.cloud_adapter._app import create_app
    from specsteer.cloud_adapter._bench import (
        ServerBenchResult,
        render_markdown,
        run_server_bench,
    )
    from specsteer.cloud_adapter._server import (
        BackgroundServer,
        load_backend,
        run_server,
        serve,
    )

#: Names served by modules that import the ``server`` extra, imported on first access.
_LAZY = {
    "BackgroundServer": "_server",
    "create_app": "_app",
    "load_backend": "_server",
    "run_server": "_server",
    "serve": "_server",
    "ServerBenchResult": "_bench",
    "render_markdown": "_bench",
    "run_server_bench": "_bench",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    try:
        return getattr(import_module(f"{__name__}.{module}"), name)
    except ImportError as e:
        from specsteer._errors import MissingDependencyError

        raise MissingDependencyError(
            e.name or "fastapi", "server", "the reference cloud server"
        ) from e
