"""Who the web app answers, over real HTTP: host names, origins, the login off loopback, the
security headers, and a chat history that never carries a deleted memory out again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from specsteer.apps.web import Access, ChatSession, create_app
from specsteer.apps.web._access import COOKIE, SECURITY_HEADERS

SPECSTEER = str(Path(sys.executable).with_name("specsteer"))
HEADERS = {k.lower(): v for k, v in SECURITY_HEADERS.items()}


def _has_security_headers(reply: httpx.Response) -> bool:
    return all(reply.headers.get(k) == v for k, v in HEADERS.items())


@pytest.fixture
def remote_app(specsteer_home: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``specsteer web`` in its own process, bound off loopback and answering to one name."""
    proc = subprocess.Popen(
        [SPECSTEER, "web", "--tiny", "--host", "0.0.0.0",
         "--port", "0", "--allow-remote", "--allowed-host", "myhost.test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "SPECSTEER_HOME": str(specsteer_home)},
    )  # fmt: skip
    assert proc.stdout is not None
    url = ""
    for line in proc.stdout:
        if line.startswith("specsteer web: "):
            url = line.split()[2]
            break
    try:
        assert url, "the app printed no start URL"
        yield proc, url, f"myhost.test:{url.split(':')[2].split('/')[0]}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_off_loopback_needs_an_explicit_host_list(specsteer_home: Path) -> None:
    done = subprocess.run(
        [SPECSTEER, "web", "--tiny", "--host", "0.0.0.0",
         "--port", "0", "--allow-remote"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SPECSTEER_HOME": str(specsteer_home)},
    )  # fmt: skip
    assert done.returncode != 0
    assert "--allowed-host" in done.stdout + done.stderr


def test_remote_app_answers_only_its_names_and_the_logged_in(
    remote_app: tuple[subprocess.Popen[str], str, str],
) -> None:
    _, url, host = remote_app
    port = host.split(":")[1]
    secret = re.fullmatch(r"http://0\.0\.0\.0:\d+/\?login=([\w-]{40,})", url)
    assert secret is not None, url
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base) as c:
        # A DNS-rebinding page: its own name in Host, its own origin.
        evil = {"host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"}
        assert c.get("/api/memories", headers=evil).status_code == 421
        assert c.post("/api/forget", json={"user": "me"}, headers=evil).status_code == 421
        assert c.get("/api/memories", headers={"host": f"127.0.0.1:{port}"}).status_code == 421

        mine = {"host": host}
        refused = c.get("/api/memories", headers=mine)
        assert refused.status_code == 401 and "start URL" in refused.json()["error"]
        assert _has_security_headers(refused)
        assert c.get("/?login=not-the-secret", headers=mine).status_code == 401

        login = c.get(f"/?login={secret[1]}", headers=mine)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert f"{COOKIE}={secret[1]}" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")

        c.cookies.set(COOKIE, secret[1])
        page = c.get("/", headers=mine)
        assert page.status_code == 200 and _has_security_headers(page)
        assert _has_security_headers(c.get("/static/app.js", headers=mine))
        assert c.get("/api/memories", headers=mine).status_code == 200
        # The origin is checked against the list, not against the Host the request brings.
        other = {**mine, "origin": f"http://evil.example:{port}"}
        assert c.post("/api/forget", json={"user": "me"}, headers=other).status_code == 403
        same = {**mine, "origin": f"http://{host}"}
        assert c.post("/api/forget", json={"user": "nobody"}, headers=same).status_code == 400


@pytest.fixture
def local_server() -> Iterator[tuple[str, Access, ChatSession]]:
    from specsteer.apps._assistants import CloudChoice, build_assistant
    from specsteer.cloud_adapter import BackgroundServer

    assistant = build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya")
    session = ChatSession(assistant, "tiny")
    access = Access()
    server = BackgroundServer(create_app(session, access=access))
    with server:
        yield server.url, access, session


def test_an_empty_host_list_answers_no_one(local_server: tuple[str, Access, ChatSession]) -> None:
    url, access, _ = local_server
    assert access.hosts == set()
    for host in (url.removeprefix("http://"), "evil.example", ""):
        reply = httpx.get(f"{url}/api/info", headers={"host": host})
        assert reply.status_code == 421 and _has_security_headers(reply)


def _chat(c: httpx.Client, message: str) -> None:
    events = [json.loads(x) for x in c.post("/api/chat", json={"message": message}).text.split("\n") if x]
    assert events[-1]["type"] == "done", events[-1]


def test_a_deleted_or_edited_memory_never_goes_out_with_the_history(
    local_server: tuple[str, Access, ChatSession],
) -> None:
    url, access, session = local_server
    access.hosts.add(url.removeprefix("http://"))
    log = session.audit_log
    with httpx.Client(base_url=url, timeout=120) as c:
        for secret, change in (("Quokka-4411", "delete"), ("Wombat-7723", "edit")):
            added = c.post("/api/memories", json={"text": f"My locker code is {secret}."}).json()
            _chat(c, f"is my locker code {secret} ?")  # screened: the memory is indexed
            before = max((r["seq"] for r in log.records()), default=0)
            if change == "delete":
                reply = c.delete(f"/api/memories/{added['id']}").json()
            else:
                reply = c.put(f"/api/memories/{added['id']}", json={"text": "No locker."}).json()
            assert reply["history_cleared"] is True
            _chat(c, "thanks , what else ?")
            sent = [log.read_payload(r) for r in log.records() if r["seq"] > before]
            assert sent and not any(secret.encode() in (p or b"") for p in sent)
            assert _has_security_headers(c.get("/api/egress"))
