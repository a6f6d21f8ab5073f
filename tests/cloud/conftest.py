"""Fixtures for the cloud suite: tiny models and the reference server as a real subprocess."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from specsteer.backends import TransformersBackend
from specsteer.testing import tiny_backend


@pytest.fixture(scope="session")
def slm() -> TransformersBackend:
    return tiny_backend(0, name="tiny-slm")


@pytest.fixture(scope="session")
def llm() -> TransformersBackend:
    return tiny_backend(1, name="tiny-llm")


@dataclass
class LiveServer:
    url: str
    token: str
    proc: subprocess.Popen[str]
    model: str = "tiny-1"


def start_server(
    tmp: Path, *args: str, token: str | None = None, token_file: bool = False
) -> LiveServer:
    """Start ``server_main --tiny`` on a free loopback port; wait until /healthz answers.

    The token goes in ``$SPECSTEER_SERVER_TOKEN``, or with ``token_file`` in a file passed as
    ``--token-file`` (the variable then unset)."""
    token = token or uuid.uuid4().hex
    env = {**os.environ, "SPECSTEER_SERVER_TOKEN": token, "SPECSTEER_HOME": str(tmp / "home")}
    if token_file:
        path = tmp / f"token-{uuid.uuid4().hex[:6]}"
        path.write_text(token + "\n")
        del env["SPECSTEER_SERVER_TOKEN"]
        args = (*args, "--token-file", str(path))
    log = (tmp / f"server-{uuid.uuid4().hex[:6]}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "specsteer.cloud_adapter.server_main",
            "--tiny",
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and not line:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
        if proc.poll() is not None:
            break
    if not line.startswith("specsteer cloud server: "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}; see {log.name}")
    url = line.split(": ", 1)[1].strip()
    assert url.startswith("http://127.0.0.1:")
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(url, token, proc)
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server never became healthy")


def stop_server(server: LiveServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One reference server subprocess for the whole session (tiny LLM + SLM copy)."""
    server = start_server(tmp_path_factory.mktemp("server"))
    yield server
    stop_server(server)
