"""Start the reference cloud server from the command line.

Examples::

    python -m specsteer.cloud_adapter.server_main --tiny --port 0
    python -m specsteer.cloud_adapter.server_main --llm ./Qwen2.5-7B-Instruct --port 8000

The bearer token is read from ``$SPECSTEER_SERVER_TOKEN`` or from a file (``--token-file``), never
from the command line, where the process list would show it (``--token`` is an error that says
so). Once listening, one line ``specsteer cloud server: <url>`` goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from specsteer._errors import ConfigurationError, SpecSteerError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter._limits import ServerLimits
from specsteer.cloud_adapter._net import is_loopback
from specsteer.cloud_adapter._server import run_server
from specsteer.privacy._receipts import ReceiptSigner

__all__ = ["main", "server_token"]

TOKEN_ENV = "SPECSTEER_SERVER_TOKEN"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m specsteer.cloud_adapter.server_main",
        description="Serve a cloud model for SpecSteer verification (and a vLLM-style subset).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tiny", action="store_true", help="tiny test models built in code")
    src.add_argument(
        "--llm",
        help="the cloud model: a local HF model folder or a .gguf file (default: the embedded "
        "Qwen2.5-Coder-1.5B-Instruct, loaded exactly as in process, on the runtime measured "
        "fastest here or $SPECSTEER_CLOUD_RUNTIME)",
    )
    p.add_argument("--slm", help="a copy of the public device model (folder or .gguf)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    p.add_argument(
        "--token-file",
        default=None,
        help=f"a file holding the bearer token (default: ${TOKEN_ENV})",
    )
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-name", default=None, help="name served on /v1/completions")
    p.add_argument("--max-body-bytes", type=int, default=ServerLimits().max_body_bytes)
    p.add_argument("--max-tokens", type=int, default=ServerLimits().max_tokens)
    p.add_argument("--timeout", type=float, default=ServerLimits().request_timeout_s)
    p.add_argument("--log-level", default="warning")
    return p


def cloud_models(
    args: argparse.Namespace,
) -> tuple[str | ModelBackend, str | ModelBackend | None]:
    """The models to serve: tiny test models, ``--llm``, or the embedded default cloud model
    from the very loader the in-process path uses (same weights, same chat template)."""
    if args.tiny:
        from specsteer.testing import tiny_backend

        return tiny_backend(1), tiny_backend(0, name="tiny-0-copy")
    if args.llm is not None:
        return args.llm, args.slm
    from specsteer._models import load_cloud_qwen_coder_1_5b
    from specsteer._runtimes import reporting

    def show(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with reporting(show):  # a first start measures the runtimes (a minute or two, once)
        return load_cloud_qwen_coder_1_5b(), args.slm


def server_token(token_file: str | None) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``$SPECSTEER_SERVER_TOKEN``.

    Raises:
        ConfigurationError: the file cannot be read or holds no token.
    """
    if token_file is None:
        return os.environ.get(TOKEN_ENV) or None
    try:
        lines = Path(token_file).expanduser().read_text().splitlines()
    except OSError as e:
        raise ConfigurationError(f"cannot read the token file {token_file}: {e.strerror}") from e
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigurationError(f"the token file {token_file} is empty; write the token in it")
    return token


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the models, serve until interrupted; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.token is not None:
        print(
            f"error: --token would show the token to every user of this machine (the process "
            f"list); set ${TOKEN_ENV}, or write it in a file and pass --token-file PATH",
            file=sys.stderr,
        )
        return 2
    try:
        token = server_token(args.token_file)
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if token is None and not is_loopback(args.host):
        # Checked before loading any model: fail in a second, not after a minute of loading.
        print(
            f"error: refusing to serve on {args.host} without a bearer token; set "
            f"${TOKEN_ENV} or pass --token-file PATH (or listen on 127.0.0.1)",
            file=sys.stderr,
        )
        return 2
    try:
        llm, slm = cloud_models(args)
    except SpecSteerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"specsteer cloud server: {url}", flush=True)
        print(f"receipt key id: {receipts.key_id}", flush=True)

    try:
        receipts = ReceiptSigner.for_this_machine()
        limits = ServerLimits(
            max_body_bytes=args.max_body_bytes,
            max_tokens=args.max_tokens,
            request_timeout_s=args.timeout,
        )
        run_server(
            llm,
            slm=slm,
            host=args.host,
            port=args.port,
            token=token,
            limits=limits,
            model_name=args.model_name,
            log_level=args.log_level.lower(),
            on_ready=ready,
            receipts=receipts,
        )
    except (SpecSteerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
