"""Who may use the web app: the host names it answers to, the login, and the headers it sends.

The page shows the user's private memories, so every request passes :func:`add_access`'s
middleware:

* **Host.** Only the names in :class:`Access` ``hosts`` are answered (``421`` otherwise), so a
  page on another site that rebinds its DNS name to this machine gets nothing. An empty list
  answers no one; off loopback the list must be given explicitly. A name listed without a port
  is answered on any port (a TLS proxy in front of the app, or the app's own port); a name with
  a port only on that port. Browsers leave the default ports out, so ``:80`` and ``:443`` match
  a ``Host`` without a port, and each other.
* **Origin.** A state-changing request that names an origin must come from one of those same
  hosts, compared against the list, never against the ``Host`` header the request itself
  brings (``https://myhost.lan`` is ``myhost.lan`` on port 443); and it must carry a JSON body,
  ``Content-Type: application/json`` with any parameters (no cross-site form posts).
* **Login.** Off loopback the app makes a random secret, printed once in the start URL
  (``/?login=...``); opening that URL sets it as an ``HttpOnly; SameSite=Strict`` cookie and
  sends the browser to ``/`` (so the secret leaves the address bar). Every other request needs
  the cookie.
* **Headers.** Every response carries ``Content-Security-Policy: default-src 'self';
  frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy:
  no-referrer`` (the page loads only its own script and style files).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from specsteer._errors import ConfigurationError
from specsteer.apps._media import is_json

__all__ = [
    "COOKIE",
    "SECURITY_HEADERS",
    "Access",
    "add_access",
    "loopback_names",
]

COOKIE = "specsteer_login"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The port of an address that names none, or names 80 or 443: browsers leave those out.
_DEFAULT = -1


def _split(value: str) -> tuple[str, int | None]:
    """``name[:port]`` as (lower-case name, port or None); a bare IPv6 address gets brackets."""
    text = value.strip().lower()
    if text.count(":") > 1 and not text.startswith("["):
        return f"[{text}]", None
    head, sep, tail = text.rpartition(":")
    if sep and tail.isascii() and tail.isdigit() and (head.endswith("]") or "[" not in head):
        return head, int(tail)
    return text, None


def _port(port: int | None) -> int:
    return _DEFAULT if port is None or port in _DEFAULT_PORTS.values() else port


def _host_entry(name: str) -> str:
    """An ``--allowed-host`` value, checked: a host name or address, with an optional port.

    Raises:
        ConfigurationError: It is a URL, or its port is not a number.
    """
    entry = name.strip().lower()
    host, port = _split(entry)
    if "/" in entry or (port is None and ":" in host.rpartition("]")[2]):
        raise ConfigurationError(
            f"--allowed-host {name!r} is not a host name; pass the name the page is reached "
            "by, with an optional :PORT (e.g. --allowed-host myhost.lan or myhost.lan:443)"
        )
    return entry


@dataclass
class Access:
    """What the app lets in.

    Attributes:
        hosts: The host names answered: ``"myhost.lan"`` on any port, ``"127.0.0.1:8765"``
            on that port only (``:80`` and ``:443`` also match a ``Host`` or an origin that
            names no port); may be filled in once the port is known. Empty answers no one.
        secret: The login secret; None for no login (loopback only).
    """

    hosts: set[str] = field(default_factory=set)
    secret: str | None = None

    @classmethod
    def remote(cls, names: Iterable[str]) -> Access:
        """Off loopback: the explicit host names (each on any port unless it names one) and a
        fresh secret.

        Raises:
            ConfigurationError: No host names were given, or one is not a host name.
        """
        listed = {_host_entry(n) for n in names if n.strip()}
        if not listed:
            raise ConfigurationError(
                "off loopback the app needs the host names it is reached by; pass "
                "--allowed-host NAME (repeat it for each name), e.g. --allowed-host myhost.lan"
            )
        return cls(hosts=listed, secret=secrets.token_urlsafe(32))

    def answers(self, name: str, port: int | None) -> bool:
        """Whether ``name`` on ``port`` (None: the scheme's default) is one of :attr:`hosts`."""
        for entry in self.hosts:
            listed, listed_port = _split(entry)
            if listed == name and (listed_port is None or _port(listed_port) == _port(port)):
                return True
        return False

    def answers_host(self, host: str) -> bool:
        """Whether a request's ``Host`` header names one of :attr:`hosts`."""
        return bool(host) and self.answers(*_split(host))

    def start_url(self, base: str) -> str:
        """The URL to open first: with the login secret when there is one."""
        return f"{base}/?login={self.secret}" if self.secret else f"{base}/"


def loopback_names(host: str, port: int) -> set[str]:
    """The ``Host`` values a loopback bind is reached by."""
    return {f"{name}:{port}" for name in (host, *_LOOPBACK_NAMES)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _origin_ok(origin: str | None, access: Access) -> bool:
    if origin is None:
        return True  # same-origin GETs and non-browser clients send none; the cookie still counts
    parts = urlsplit(origin.strip())
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or "@" in parts.netloc or parts.path or parts.query:
        return False
    name, port = _split(parts.netloc)
    return access.answers(name, None if port == default else port)


def _logged_in(request: Request, secret: str) -> bool:
    given = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(given.encode(), secret.encode())


def _login(request: Request, secret: str) -> Response | None:
    """The start URL: set the cookie and go to ``/``; None when this is not that request."""
    given = request.query_params.get("login")
    if request.url.path != "/" or given is None:
        return None
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _error(401, "that login link is not this app's; open the start URL it printed")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/")
    return response


def _refusal(request: Request, access: Access) -> Response | None:
    if not access.answers_host(request.headers.get("host", "")):
        return _error(421, "this app does not answer to that host name")
    if request.method not in ("GET", "HEAD"):
        if not _origin_ok(request.headers.get("origin"), access):
            return _error(403, "requests from other sites are refused")
        json_body = is_json(request.headers.get("content-type", ""))
        if request.method in ("POST", "PUT") and not json_body:
            return _error(415, "send a JSON body (content-type: application/json)")
    if access.secret is not None:
        login = _login(request, access.secret)
        if login is not None:
            return login
        if not _logged_in(request, access.secret):
            return _error(401, "log in first: open the start URL the app printed when it started")
    return None


def add_access(app: FastAPI, access: Access) -> None:
    """Check every request against ``access`` and add the security headers to every answer."""

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = _refusal(request, access) or await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response
