"""Fixtures for the memory tests: every kind of store, a fast embedder, a chromadb server.

``make_store`` builds stores of one kind per test parameter, so a test that takes it is a
contract test: the embedded chromadb store, the same store against a chromadb server on
loopback, and the in-memory fake must all pass it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from specsteer.memory import BaseMemoryStore, HashEmbedder, MemoryStore
from specsteer.memory.testing import InMemoryStore
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


StoreFactory = Callable[..., BaseMemoryStore]


def _factory(request: pytest.FixtureRequest, kind: str) -> Iterator[StoreFactory]:
    made: list[BaseMemoryStore] = []

    def make(**options: Any) -> BaseMemoryStore:
        options.setdefault("embedder", HashEmbedder())
        if kind == "fake":
            store: BaseMemoryStore = InMemoryStore(**options)
        elif kind == "embedded":
            store = MemoryStore(**options)
        else:
            url = request.getfixturevalue("chroma_server")
            # A fresh keyring per store gives fresh collection names on the shared server.
            store = MemoryStore(url=url, keyring=Keyring(), **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=["embedded", "server", "fake"])
def make_store(request: pytest.FixtureRequest, specsteer_home: Path) -> Iterator[StoreFactory]:
    """Builds stores of each kind in turn: ``make_store(clock=..., batch_size=...)``."""
    yield from _factory(request, request.param)


@pytest.fixture(params=["embedded", "fake"])
def make_local_store(
    request: pytest.FixtureRequest, specsteer_home: Path
) -> Iterator[StoreFactory]:
    """As ``make_store``, without the server (for long tables of cases)."""
    yield from _factory(request, request.param)


@pytest.fixture
def any_store(make_store: StoreFactory) -> BaseMemoryStore:
    """One store of each kind in turn, with the hashing embedder."""
    return make_store()


@pytest.fixture
def embedded_store(specsteer_home: Path) -> Iterator[MemoryStore]:
    """An embedded store under the test's SPECSTEER_HOME with the hashing embedder."""
    store = MemoryStore(embedder=HashEmbedder())
    yield store
    store.close()
