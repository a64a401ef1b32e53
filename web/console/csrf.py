"""Cookie-authenticated writes must come from the service's own page (or an allowed origin).

A pure ASGI middleware: it decides from the headers alone and never touches the body or
the response, so streams pass through untouched. ``SameSite=Strict`` already keeps the
cookie off cross-site requests; this also refuses same-site ones from other origins
(another port, a sibling sub-domain) and browsers that ignore SameSite.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from web.console.cookie import SESSION_COOKIE
from web.errors import ApiError, error_response

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Where a write with the cookie is refused from, for the detail.
_REFUSED = "a cross-site request with the session cookie was refused"


def _has_session(headers: Headers) -> bool:
    return any(
        part.strip().startswith(SESSION_COOKIE + "=")
        for value in headers.getlist("cookie")
        for part in value.split(";")
    )


def same_origin(headers: Headers, allowed: frozenset[str]) -> bool:
    """The browser says the request comes from this host's page, or an allowed origin."""
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        if origin.lower() in allowed:
            return True
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()
    # No Origin: Sec-Fetch-Site is the only word left; without either, refuse.
    return headers.get("sec-fetch-site") in ("same-origin", "none")


class CsrfGuard:
    """403 for an unsafe request carrying the session cookie but no same-origin proof.

    Requests with an ``Authorization`` header are not the cookie's: a page cannot make a
    browser add one to a cross-site request, so they pass. So does ``POST /session``
    only from the page itself (no signing a visitor in as someone else).
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self._app = app
        self._allowed = frozenset(o.lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE:
            headers = Headers(scope=scope)
            by_cookie = "authorization" not in headers and (
                _has_session(headers) or scope["path"] == "/session"
            )
            if by_cookie and not same_origin(headers, self._allowed):
                response = error_response(ApiError(403, _REFUSED, code="forbidden"))
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)
