"""End to end over HTTP: canaries planted in a user's memory never appear in any byte that goes
on the wire to the reference server.

The cloud is a real ``HttpVerifier`` talking to the reference server app (served by uvicorn on
loopback). Its httpx transport records every request exactly as it is handed to the connection
(request line, headers, body) before forwarding it, so the checks see what the network sees.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from specsteer import Assistant, GenerationResult
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import HttpVerifier, VerifierCore
from specsteer.memory import HashEmbedder, MemoryStore
from specsteer.privacy import AuditLog
from specsteer.testing import TINY_WORDS, tiny_backend

from .copying import CopyingBackend
from .test_canaries import guard_only
from .wire import ngrams, payload_texts

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def new_canary() -> str:
    """``canary`` + a fresh uuid's hex: one word of the tiny tokenizer (nothing to split on).

    Redrawn until it has digits but no run of five, so that no PII detector (card, phone) can
    take it for a number: the guard must stop it as private text, not as PII.
    """
    while True:
        word = "canary" + uuid.uuid4().hex
        if re.search(r"\d", word[6:]) and not re.search(r"\d{5}", word):
            return word


def letters_only(word: str) -> str:
    """The same word with its digits spelled as letters (``0-9`` -> ``g-p``)."""
    return word.translate(str.maketrans("0123456789", "ghijklmnop"))


CANARIES = (new_canary(), new_canary())
CONTROL = new_canary()
#: Letters-only canaries: caught as words no English dictionary lists.
WORD_CANARIES = (letters_only(new_canary()), letters_only(new_canary()))


def private_notes(canaries: tuple[str, ...]) -> tuple[str, str]:
    return (
        f"my locker code is {canaries[0]} and i keep it in the office near the garden door",
        f"my sister knows the secret word {canaries[1]} that opens the box at home",
    )


PRIVATE = private_notes(CANARIES)
QUERY = "what is my locker code ?"
WORDS = (
    *TINY_WORDS,
    *("locker", "code", "keep", "near", "door", "secret", "word", "opens", "box"),
    *CANARIES,
    CONTROL,
    *WORD_CANARIES,
)


@dataclass(frozen=True)
class Captured:
    """One request as it went to the connection."""

    url: str
    head: bytes  # request line and headers
    body: bytes

    @property
    def raw(self) -> bytes:
        return self.head + b"\r\n" + self.body


class RecordingTransport(httpx.BaseTransport):
    """Records each request's bytes, then sends it with a real ``httpx.HTTPTransport``."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.captured: list[Captured] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        line = f"{request.method} {request.url.raw_path.decode('ascii')} HTTP/1.1\r\n".encode()
        headers = b"".join(k + b": " + v + b"\r\n" for k, v in request.headers.raw)
        self.captured.append(Captured(str(request.url), line + headers, body))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class Server:
    url: str
    token: str


@pytest.fixture(scope="module")
def base() -> TransformersBackend:
    return tiny_backend(0, words=WORDS)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    from specsteer.cloud_adapter import BackgroundServer, create_app

    token = secrets.token_urlsafe(16)
    app = create_app(VerifierCore(tiny_backend(1, words=WORDS)), token=token)
    with BackgroundServer(app) as bg:
        yield Server(bg.url, token)


def run_over_http(
    server: Server,
    device: object,
    store: MemoryStore,
    user: str,
    query: str,
    *,
    privacy: bool = True,
) -> tuple[list[Captured], GenerationResult]:
    transport = RecordingTransport()
    cloud = HttpVerifier(server.url, token=server.token, transport=transport, retries=0)
    assistant = Assistant(
        device,  # type: ignore[arg-type]
        cloud,
        memory=store,
        user_id=user,
        context_tokens=512,
        privacy=guard_only(device) if privacy else False,
    )
    try:
        result = assistant.generate(query, max_new_tokens=48, lam=0.05)
    finally:
        assistant.close()
    return transport.captured, result


def forms(word: str) -> set[bytes]:
    """The ways ``word`` could show up in an HTTP request."""
    return {
        word.encode(),
        word.upper().encode(),
        quote(word).encode(),
        quote_plus(word).encode(),
        json.dumps(word, ensure_ascii=True).strip('"').encode(),
    }


def check_no_canary_on_the_wire(
    captured: list[Captured],
    base: TransformersBackend,
    canaries: tuple[str, ...],
    private: tuple[str, ...] = (),
) -> None:
    """No canary in any captured byte (as is, upper/lowercased, URL- or JSON-escaped), in any
    token id sent, or in the decoded ids; and no 8-gram of the ``private`` notes."""
    assert captured, "no request was captured: the check would pass vacuously"
    private_grams: set[tuple[str, ...]] = set().union(*(ngrams(p, 8) for p in private))
    canary_ids = {i for c in canaries for i in base.encode(c)}
    for req in captured:
        raw, lowered = req.raw, req.raw.lower()
        for canary in canaries:
            for form in forms(canary):
                assert form not in raw, f"canary {form!r} in request to {req.url}"
                assert form.lower() not in lowered
        # The tokenizer is word level: a canary could also leave as its token id.
        doc = json.loads(req.body)
        sent_ids = [*doc["prefix"].get("ids", []), *doc["draft"].get("ids", [])]
        assert not canary_ids & set(sent_ids), "a canary's token id was sent"
        text = payload_texts(req.body, base.decode)
        for canary in canaries:
            assert canary not in text.lower()
        assert not (ngrams(text, 8) & private_grams), "an 8-gram of the private notes left"


def check_audit_matches_wire(
    captured: list[Captured], result: GenerationResult, server: Server
) -> None:
    """Every request on the wire is in the audit log, byte for byte, and nothing else is."""
    assert result.privacy is not None
    assert result.privacy.payloads == len(captured) == result.stats.cloud_calls
    log = AuditLog()
    records = list(log.records())
    assert len(records) == len(captured)
    assert [log.read_payload(r) for r in records] == [req.body for req in captured]
    assert {r["destination"] for r in records} == {server.url}
    assert log.verify().ok


def test_capture_sees_real_requests(base: TransformersBackend, server: Server) -> None:
    """The transport records what the server receives: method, path, token, JSON body."""
    store = MemoryStore(embedder=HashEmbedder())
    captured, result = run_over_http(server, base, store, "nobody", "what is my plan for friday ?")
    assert captured and result.stats.cloud_calls == len(captured)
    for req in captured:
        assert req.url == f"{server.url}/v1/verify"
        assert req.head.startswith(b"POST /v1/verify HTTP/1.1\r\n")
        assert f"authorization: Bearer {server.token}\r\n".encode() in req.head
        assert json.loads(req.body)["protocol_version"] >= 1


@pytest.fixture
def store(specsteer_home: Path) -> MemoryStore:
    s = MemoryStore(embedder=HashEmbedder())
    for text in PRIVATE:
        s.add("maya", text)
    s.add("control", "my favourite city is rome and i love pasta")
    return s


def test_memory_canaries_never_reach_the_wire(
    base: TransformersBackend, server: Server, store: MemoryStore
) -> None:
    device = CopyingBackend(base, " ".join(PRIVATE))
    captured, result = run_over_http(server, device, store, "maya", QUERY)

    check_no_canary_on_the_wire(captured, base, CANARIES, PRIVATE)
    # The private path ran: the device wrote the private note (a canary included) for the user,
    # and the rounds that carried it stayed on the device.
    assert any(c in result.text for c in CANARIES), result.text
    assert result.privacy is not None and result.privacy.spans_kept_local > 0
    assert result.privacy.detectors_fired.get("PRIVATE_TOKEN", 0) > 0
    assert result.stats.local_rounds > 0
    check_audit_matches_wire(captured, result, server)


def test_control_a_canary_in_the_public_query_is_on_the_wire(
    base: TransformersBackend, server: Server, store: MemoryStore
) -> None:
    """The capture works: a canary the user puts in the (public) query is seen in the bytes."""
    captured, result = run_over_http(server, base, store, "control", f"what is {CONTROL} ?")
    assert captured
    for req in captured:
        assert CONTROL.encode() in req.body and CONTROL.encode() in req.raw
    with pytest.raises(AssertionError, match="canary"):
        check_no_canary_on_the_wire(captured, base, (CONTROL,))
    check_audit_matches_wire(captured, result, server)


def test_control_without_the_guard_the_canary_leaves_as_token_ids(
    base: TransformersBackend, server: Server, store: MemoryStore
) -> None:
    """The id check can fail: with privacy off, the copying device's drafts carry the canary."""
    device = CopyingBackend(base, " ".join(PRIVATE))
    captured, _ = run_over_http(server, device, store, "maya", QUERY, privacy=False)
    assert captured
    with pytest.raises(AssertionError, match="token id"):
        check_no_canary_on_the_wire(captured, base, CANARIES, PRIVATE)
    # Nothing screened, nothing audited.
    assert list(AuditLog().records()) == []


def test_letters_only_canaries_never_reach_the_wire(
    base: TransformersBackend, server: Server, specsteer_home: Path
) -> None:
    notes = private_notes(WORD_CANARIES)
    store = MemoryStore(embedder=HashEmbedder())
    for text in notes:
        store.add("maya", text)
    device = CopyingBackend(base, " ".join(notes))
    captured, result = run_over_http(server, device, store, "maya", QUERY)
    assert any(c in result.text for c in WORD_CANARIES)  # the device wrote the private note
    check_no_canary_on_the_wire(captured, base, WORD_CANARIES, notes)
