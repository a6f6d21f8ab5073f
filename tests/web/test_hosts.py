"""Host names and origins the web app answers, behind a TLS proxy and directly: a name listed
without a port is answered on any port, and the default ports browsers leave out match."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from specsteer._errors import ConfigurationError
from specsteer.apps.web import Access, ChatSession, create_app
from specsteer.apps.web._access import COOKIE

from .test_access import remote_app  # noqa: F401 (a fixture)


@pytest.mark.parametrize(
    ("listed", "host", "answered"),
    [
        ("myhost.lan", "myhost.lan", True),  # behind a TLS proxy: the browser leaves :443 out
        ("myhost.lan", "myhost.lan:443", True),
        ("myhost.lan", "myhost.lan:8765", True),  # the app's own port
        ("myhost.lan", "MyHost.LAN:8765", True),
        ("myhost.lan", "myhost.lan.evil.example", False),
        ("myhost.lan", "evil.example", False),
        ("myhost.lan", "", False),
        ("myhost.lan:443", "myhost.lan", True),
        ("myhost.lan:443", "myhost.lan:443", True),
        ("myhost.lan:443", "myhost.lan:80", True),  # both default: a Host names no scheme
        ("myhost.lan:443", "myhost.lan:8765", False),
        ("myhost.lan:8765", "myhost.lan:8765", True),
        ("myhost.lan:8765", "myhost.lan", False),
        ("myhost.lan:8765", "myhost.lan:87650", False),
        ("[::1]:8765", "[::1]:8765", True),
        ("[::1]:8765", "[::1]", False),
        ("fe80::1", "[fe80::1]:8765", True),
        ("myhost.lan", "myhost.lan:abc", False),
    ],
)
def test_host_header(listed: str, host: str, answered: bool) -> None:
    assert Access(hosts={listed}).answers_host(host) is answered


@pytest.mark.parametrize(
    ("listed", "origin", "allowed"),
    [
        ("myhost.lan", "https://myhost.lan", True),
        ("myhost.lan", "http://myhost.lan:8765", True),
        ("myhost.lan", "HTTPS://MYHOST.LAN", True),
        ("myhost.lan", "https://evil.example", False),
        ("myhost.lan", "https://myhost.lan.evil.example", False),
        ("myhost.lan", "https://user@myhost.lan", False),
        ("myhost.lan", "null", False),
        ("myhost.lan", "ftp://myhost.lan", False),
        ("myhost.lan:443", "https://myhost.lan", True),
        ("myhost.lan:443", "https://myhost.lan:443", True),
        ("myhost.lan:443", "https://myhost.lan:8443", False),
        ("myhost.lan:8765", "http://myhost.lan:8765", True),
        ("myhost.lan:8765", "https://myhost.lan", False),
    ],
)
def test_origin_of_a_state_changing_request(listed: str, origin: str, allowed: bool) -> None:
    session = _session()
    client = TestClient(create_app(session, access=Access(hosts={listed})))
    host = listed if ":" in listed else f"{listed}:8765"
    reply = client.post(
        "/api/forget", json={"user": "nobody"}, headers={"host": host, "origin": origin}
    )
    assert reply.status_code == (400 if allowed else 403), reply.text  # 400: the name is wrong


def _session() -> ChatSession:
    from specsteer.apps._assistants import CloudChoice, build_assistant

    return ChatSession(build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya"), "tiny")


@pytest.mark.parametrize("listed", ["myhost.lan", "myhost.lan:443"])
def test_the_documented_tls_proxy_setup_gets_in(listed: str) -> None:
    """``--allowed-host myhost.lan`` (or ``:443``), the proxy passing the browser's Host and
    Origin, which name no port."""
    access = Access.remote([listed])
    assert access.secret is not None
    client = TestClient(create_app(_session(), access=access))
    proxied = {"host": "myhost.lan", "origin": "https://myhost.lan"}
    login = client.get(f"/?login={access.secret}", headers=proxied, follow_redirects=False)
    assert login.status_code == 303
    client.cookies.set(COOKIE, access.secret)
    assert client.get("/api/memories", headers=proxied).status_code == 200
    added = client.post("/api/memories", json={"text": "I like tea."}, headers=proxied)
    assert added.status_code == 201


@pytest.mark.parametrize("bad", ["http://myhost.lan", "myhost.lan/", "myhost.lan:https", "a:"])
def test_an_allowed_host_that_is_not_a_host_name_is_refused(bad: str) -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape("--allowed-host myhost.lan or myhost.lan:443")
    ):
        Access.remote([bad])


def test_the_remote_app_answers_its_name_without_a_port(
    remote_app: tuple[subprocess.Popen[str], str, str],  # noqa: F811
    specsteer_home: Path,
) -> None:
    _, _, host = remote_app
    port = host.split(":")[1]
    name = host.split(":")[0]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        for headers in ({"host": name}, {"host": f"{name}:443"}):
            refused = c.get("/api/memories", headers=headers)
            assert refused.status_code == 401, refused.text  # past the host check: the login
        proxied = {"host": name, "origin": f"https://{name}"}
        assert c.post("/api/forget", json={"user": "x"}, headers=proxied).status_code == 401
        other = {"host": name, "origin": "https://evil.example"}
        assert c.post("/api/forget", json={"user": "x"}, headers=other).status_code == 403
