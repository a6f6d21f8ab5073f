"""Fixtures for the memory tests: a fast fake embedder, and a real chromadb server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import Keyring

CHROMA = Path(sys.executable).with_name("chroma")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A chromadb server (``chroma run``) in a subprocess for the whole session; yields its URL."""
    exe = CHROMA if CHROMA.exists() else shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI is not installed")
    data = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"chroma server exited with {proc.returncode}; see {data / 'server.log'}"
                )
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma server did not answer its heartbeat within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


StoreFactory = Callable[..., MemoryStore]


@pytest.fixture
def embedded_store(specsteer_home: Path) -> Iterator[MemoryStore]:
    """An embedded store under the test's SPECSTEER_HOME with the hashing embedder."""
    store = MemoryStore(embedder=HashEmbedder())
    yield store
    store.close()


@pytest.fixture(params=["embedded", "server"])
def any_store(request: pytest.FixtureRequest, specsteer_home: Path) -> Iterator[MemoryStore]:
    """The same tests against the embedded store and a chromadb server."""
    if request.param == "embedded":
        store = MemoryStore(embedder=HashEmbedder())
    else:
        url = request.getfixturevalue("chroma_server")
        # A fresh keyring per test gives fresh collection names on the shared server.
        store = MemoryStore(url=url, embedder=HashEmbedder(), keyring=Keyring())
    yield store
    store.close()
