"""The client refuses plain http to another host unless told the network is trusted, and the
server takes its token from the environment or a file, never from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from specsteer import ConfigurationError
from specsteer.cloud_adapter import HttpVerifier, OpenAICompatibleVerifier

from .conftest import start_server, stop_server

pytestmark = pytest.mark.timeout(120)

REMOTE = ["http://10.0.0.5:8000", "http://gpu-host:8000/v1", "http://[2001:db8::1]:8000"]
LOCAL = ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]


def never(_: httpx.Request) -> httpx.Response:
    raise AssertionError("nothing may be sent")


@pytest.mark.parametrize("url", REMOTE)
def test_plain_http_to_another_host_is_refused(url: str, slm) -> None:
    transport = httpx.MockTransport(never)
    with pytest.raises(ConfigurationError, match="insecure_http=True"):
        HttpVerifier(url, token="t", transport=transport)
    with pytest.raises(ConfigurationError, match="https://"):
        OpenAICompatibleVerifier(url, "m", tokenizer=slm, token="t", transport=transport)


@pytest.mark.parametrize("url", [*REMOTE, *(u.replace("http:", "https:") for u in REMOTE)])
def test_https_or_an_explicit_opt_in_is_accepted(url: str) -> None:
    insecure = url.startswith("http:")
    HttpVerifier(url, transport=httpx.MockTransport(never), insecure_http=insecure).close()


@pytest.mark.parametrize("url", LOCAL)
def test_loopback_needs_no_opt_in(url: str) -> None:
    HttpVerifier(url, transport=httpx.MockTransport(never)).close()


def test_the_server_refuses_a_token_on_its_command_line() -> None:
    cmd = [sys.executable, "-m", "specsteer.cloud_adapter.server_main", "--tiny", "--token", "s3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "process list" in done.stderr and "--token-file" in done.stderr


def test_the_server_reads_its_token_from_a_file(tmp_path: Path) -> None:
    server = start_server(tmp_path, token_file=True)
    try:
        url = f"{server.url}/v1/completions"
        body = {"prompt": "i love the", "max_tokens": 1, "temperature": 0}
        assert httpx.post(url, json=body, timeout=30).status_code == 401
        auth = {"authorization": f"Bearer {server.token}"}
        assert httpx.post(url, json=body, headers=auth, timeout=30).status_code == 200
    finally:
        stop_server(server)


def test_an_empty_token_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    cmd = [sys.executable, "-m", "specsteer.cloud_adapter.server_main", "--tiny"]
    done = subprocess.run(
        [*cmd, "--token-file", str(empty)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "is empty" in done.stderr
