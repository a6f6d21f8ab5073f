"""Fault injection for the cloud suite: an httpx transport wrapper and misbehaving TCP servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

Forward = Callable[[], httpx.Response]
Fault = Callable[[httpx.Request, Forward], httpx.Response]


class FaultTransport(httpx.BaseTransport):
    """Forwards to a real transport, letting ``fault`` replace or rewrite each exchange.

    Records every outgoing body, so tests see the exact bytes that left.
    """

    def __init__(self, fault: Fault, inner: httpx.BaseTransport | None = None) -> None:
        self.fault = fault
        self.inner = inner or httpx.HTTPTransport()
        self.sent: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.read())

        def forward() -> httpx.Response:
            resp = self.inner.handle_request(request)
            resp.read()
            return httpx.Response(resp.status_code, content=resp.content, headers=_json_headers())

        return self.fault(request, forward)

    def close(self) -> None:
        self.inner.close()


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json"}


def status(code: int, message: str = "injected") -> Fault:
    body = json.dumps({"error": {"type": "injected", "message": message}}).encode()
    return lambda _req, _fwd: httpx.Response(code, content=body, headers=_json_headers())


def body(raw: bytes) -> Fault:
    return lambda _req, _fwd: httpx.Response(200, content=raw, headers=_json_headers())


def raises(exc: type[httpx.HTTPError]) -> Fault:
    def fault(req: httpx.Request, _fwd: Forward) -> httpx.Response:
        raise exc("injected", request=req)  # type: ignore[call-arg]

    return fault


def rewrite(fn: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Fault:
    """Forward, then let ``fn(response_json, request_json)`` edit the JSON (or return bytes)."""

    def fault(req: httpx.Request, fwd: Forward) -> httpx.Response:
        resp = fwd()
        doc = json.loads(resp.content)
        out = fn(doc, json.loads(req.content))
        raw = out if isinstance(out, bytes) else json.dumps(doc).encode()
        return httpx.Response(resp.status_code, content=raw, headers=_json_headers())

    return fault


def truncated(fraction: float = 0.5) -> Fault:
    def fault(_req: httpx.Request, fwd: Forward) -> httpx.Response:
        resp = fwd()
        return httpx.Response(200, content=resp.content[: int(len(resp.content) * fraction)])

    return fault


def delayed(seconds: float) -> Fault:
    def fault(_req: httpx.Request, fwd: Forward) -> httpx.Response:
        time.sleep(seconds)
        return fwd()

    return fault


def free_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tcp_server(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    """A raw TCP server on loopback running ``handler`` per connection; yields its base URL."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=_safe, args=(handler, conn, stop), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for c in conns:
            c.close()
        srv.close()


def _safe(handler: Callable[..., None], conn: socket.socket, stop: threading.Event) -> None:
    with suppress(OSError):
        handler(conn, stop)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Accept, read the request, never answer."""
    conn.settimeout(0.1)
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """Answer 200 with a long body, one byte every 50 ms."""
    conn.recv(65536)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    )
    while not stop.is_set():
        conn.sendall(b" ")
        time.sleep(0.05)


def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    """Answer with a status line, then header bytes one every 50 ms, never ending the headers."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: ")
    while not stop.is_set():
        conn.sendall(b"a")
        time.sleep(0.05)


def hang_up(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request and close the connection without a word."""
    conn.recv(65536)
    conn.close()
