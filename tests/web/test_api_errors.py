"""The web API's refusals: one error shape, typed 4xx for bad input, a contained 500 that keeps
the security headers and the connection, and text fields that refuse NUL and invisible text."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from specsteer.apps.web import Access, ChatSession, create_app
from specsteer.apps.web._access import SECURITY_HEADERS
from specsteer.apps.web._text import check_text

HEADERS = {k.lower(): v for k, v in SECURITY_HEADERS.items()}


@pytest.fixture
def session() -> ChatSession:
    from specsteer.apps._assistants import CloudChoice, build_assistant

    return ChatSession(build_assistant(cloud=CloudChoice(), tiny=True, user_id="maya"), "tiny")


@pytest.fixture
def client(session: ChatSession) -> TestClient:
    app = create_app(session, access=Access(hosts={"testserver"}))
    return TestClient(app, raise_server_exceptions=False)


def _sent(session: ChatSession) -> int:
    log = session.audit_log
    return 0 if log is None else sum(1 for _ in log.records())


# -- blank search (a typed 4xx, not a 500) ---------------------------------------------------------


@pytest.mark.parametrize("q", [" ", "%20%20", "%E2%80%8B", "%00"])
def test_a_blank_search_is_refused_naming_the_field(client: TestClient, q: str) -> None:
    reply = client.get(f"/api/memories/search?q={q}")
    assert reply.status_code == 422
    assert reply.json()["error"].startswith("search: it ")


# -- an unexpected error: a 500 with the headers, on a connection that stays open -----------------


def _exchange(conn: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request on an open connection, and its whole response."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: testserver\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def failing_server(session: ChatSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app served over real HTTP, its memory list broken by a bug (a RuntimeError)."""
    from specsteer.cloud_adapter import BackgroundServer

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug, with private text: Quokka-4411")

    monkeypatch.setattr(session.assistant.memory, "memories", broken)
    with BackgroundServer(create_app(session, access=Access(hosts={"testserver"}))) as server:
        yield server.url


def test_an_unexpected_error_is_a_500_with_headers_and_the_connection_stays(
    failing_server: str,
) -> None:
    port = int(failing_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        status, headers, body = _exchange(conn, "/api/memories")
        assert status == 500
        assert all(headers.get(k) == v for k, v in HEADERS.items()), headers
        assert headers.get("connection", "").lower() != "close"
        error = json.loads(body)["error"]
        assert "server log" in error and "Quokka" not in error
        again, headers, _ = _exchange(conn, "/api/info")  # the same connection, still open
        assert again == 200 and headers["content-type"] == "application/json"


# -- one error shape for Starlette's own refusals --------------------------------------------------


def test_an_unknown_route_is_the_apps_error_shape(client: TestClient) -> None:
    reply = client.get("/api/nope")
    assert reply.status_code == 404 and set(reply.json()) == {"error"}
    assert "GET /api/nope" in reply.json()["error"] and "/api" in reply.json()["error"]
    assert all(reply.headers.get(k) == v for k, v in HEADERS.items())
    assert set(client.get("/static/nope.js").json()) == {"error"}


def test_a_wrong_method_names_the_methods_the_path_takes(client: TestClient) -> None:
    reply = client.patch("/api/memories", json={"text": "x"})
    assert reply.status_code == 405 and set(reply.json()) == {"error"}
    assert reply.json()["error"] == "PATCH /api/memories is not allowed; this path takes GET, POST"
    assert reply.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("body", [b"{bad", b"", b'{"text": "x"'])
def test_a_body_that_is_not_json_says_so(client: TestClient, body: bytes) -> None:
    reply = client.post("/api/memories", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and set(reply.json()) == {"error"}
    error = reply.json()["error"]
    why = "is empty" if not body else "is not valid JSON ("
    assert error.startswith(f"request: the body {why}") and "send one JSON object" in error


# -- the content type: application/json, parsed --------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON;charset=UTF-8", True),
        (" application/json ", True),
        ("application/json-evil", False),
        ("application/jsonp", False),
        ("application/json+evil; charset=utf-8", False),
        ("text/plain; application/json", False),
        ("text/plain", False),
        ("", False),
    ],
)
def test_the_content_type_is_parsed_not_prefix_matched(
    client: TestClient, content_type: str, accepted: bool
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = client.post("/api/memories", content=b'{"text": "I like tea."}', headers=headers)
    assert (reply.status_code == 201) is accepted, (reply.status_code, reply.text)
    if not accepted:
        assert reply.status_code == 415 and "application/json" in reply.json()["error"]


# -- text fields: no NUL, nothing invisible-only --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("\x00", "it contains a NUL character"),
        ("hi\x00there", "it contains a NUL character"),
        ("\u200b", "it is empty"),
        (" \u200b\ufeff\u2060 ", "it is empty"),
        ("\t\n\x01", "it is empty"),
        ("", "it is empty"),
        ("hi", None),
        ("a\u200bb", None),  # an invisible character inside visible text
        ("👍", None),
        ("\u00e9", None),
    ],
)
def test_check_text(text: str, refused: str | None) -> None:
    if refused is None:
        assert check_text(text) == text
    else:
        with pytest.raises(ValueError, match=refused):
            check_text(text)


@pytest.mark.parametrize("message", ["\x00", "\u200b", " \ufeff ", "hello\x00"])
def test_an_invisible_or_nul_chat_message_never_leaves(
    client: TestClient, session: ChatSession, message: str
) -> None:
    before = _sent(session)
    reply = client.post("/api/chat", json={"message": message, "max_new_tokens": 2})
    assert reply.status_code == 422 and reply.json()["error"].startswith("message: it ")
    assert _sent(session) == before


@pytest.mark.parametrize("text", ["\x00", "\u200b", "note\x00"])
def test_an_invisible_or_nul_memory_is_refused(client: TestClient, text: str) -> None:
    added = client.post("/api/memories", json={"text": text})
    assert added.status_code == 422 and added.json()["error"].startswith("memory: it ")
    kept = client.post("/api/memories", json={"text": "I like tea."}).json()
    edited = client.put(f"/api/memories/{kept['id']}", json={"text": text})
    assert edited.status_code == 422 and edited.json()["error"].startswith("memory: it ")
    assert [m["text"] for m in client.get("/api/memories").json()["memories"]] == ["I like tea."]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Maya\x00"}, "name"),
        ({"name": "\u200b"}, "name"),
        ({"sign_off": "\x00"}, "sign_off"),
        ({"people": [{"name": "Lena\x00", "relation": "sister"}]}, "people.0.name"),
        ({"people": [{"name": "Lena", "relation": "\u200b"}]}, "people.0.relation"),
        ({"hidden": ["\x00"]}, "hidden.0"),
    ],
)
def test_a_persona_with_nul_or_invisible_text_is_refused(
    client: TestClient, body: dict, field: str
) -> None:
    reply = client.put("/api/persona", json=body)
    assert reply.status_code == 422 and reply.json()["error"].startswith(f"{field}: it ")
    assert client.get("/api/persona").json()["name"] is None  # nothing was stored


def test_a_persona_left_blank_stays_unset(client: TestClient) -> None:
    reply = client.put("/api/persona", json={"name": " ", "sign_off": ""})
    assert reply.status_code == 200 and reply.json()["name"] is None


def test_two_people_of_one_name_are_refused_not_merged(client: TestClient) -> None:
    people = [{"name": "Ana", "relation": "sister"}, {"name": "ana", "relation": "mother"}]
    reply = client.put("/api/persona", json={"people": people})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error.startswith("people: ") and "two people are called 'ana'" in error
    assert client.get("/api/persona").json()["people"] == []  # nothing was stored


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    from specsteer.apps.web._app import MAX_BODY_BYTES

    big = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    headers = {"content-type": "application/json"}
    declared = client.post("/api/memories", content=big, headers=headers)

    def pieces() -> Iterator[bytes]:  # no content-length: counted as it arrives
        for at in range(0, len(big), 65536):
            yield big[at : at + 65536]

    streamed = client.post("/api/memories", content=pieces(), headers=headers)
    for reply in (declared, streamed):
        assert reply.status_code == 413 and "over" in reply.json()["error"]
        assert reply.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/memories").json()["memories"] == []
