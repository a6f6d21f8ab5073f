"""Who may use the web app: the host names it answers to, the login, and the headers it sends.

The page shows the user's private memories, so every request passes :func:`add_access`'s
middleware:

* **Host.** Only the names in :class:`Access` ``hosts`` are answered (``421`` otherwise), so a
  page on another site that rebinds its DNS name to this machine gets nothing. An empty list
  answers no one; off loopback the list must be given explicitly.
* **Origin.** A state-changing request that names an origin must come from one of those same
  hosts, compared against the list, never against the ``Host`` header the request itself
  brings; and it must carry a JSON body (no cross-site form posts).
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

__all__ = ["COOKIE", "SECURITY_HEADERS", "Access", "add_access", "loopback_names"]

COOKIE = "specsteer_login"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Access:
    """What the app lets in.

    Attributes:
        hosts: ``Host`` values answered, with the port (``"127.0.0.1:8765"``); may be filled
            in once the port is known. Empty answers no one.
        secret: The login secret; None for no login (loopback only).
    """

    hosts: set[str] = field(default_factory=set)
    secret: str | None = None

    @classmethod
    def remote(cls, names: Iterable[str]) -> Access:
        """Off loopback: the explicit host names (ports added later) and a fresh secret.

        Raises:
            ConfigurationError: No host names were given.
        """
        listed = {n.strip().lower() for n in names if n.strip()}
        if not listed:
            raise ConfigurationError(
                "off loopback the app needs the host names it is reached by; pass "
                "--allowed-host NAME (repeat it for each name), e.g. --allowed-host myhost.lan"
            )
        return cls(hosts=listed, secret=secrets.token_urlsafe(32))

    def with_port(self, port: int) -> None:
        """Add ``:port`` to each bare name in :attr:`hosts`."""
        self.hosts = {h if h.rsplit(":", 1)[-1].isdigit() else f"{h}:{port}" for h in self.hosts}

    def start_url(self, base: str) -> str:
        """The URL to open first: with the login secret when there is one."""
        return f"{base}/?login={self.secret}" if self.secret else f"{base}/"


def loopback_names(host: str, port: int) -> set[str]:
    """The ``Host`` values a loopback bind is reached by."""
    return {f"{name}:{port}" for name in (host, *_LOOPBACK_NAMES)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _origin_ok(origin: str | None, hosts: set[str]) -> bool:
    if origin is None:
        return True  # same-origin GETs and non-browser clients send none; the cookie still counts
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() in hosts


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
    host = request.headers.get("host", "").lower()
    if host not in access.hosts:
        return _error(421, "this app does not answer to that host name")
    if request.method not in ("GET", "HEAD"):
        if not _origin_ok(request.headers.get("origin"), access.hosts):
            return _error(403, "requests from other sites are refused")
        json_body = request.headers.get("content-type", "").startswith("application/json")
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
