"""Writes a browser sends must come from the service's own page (or an allowed origin).

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
_REFUSED = "a write from another site's page was refused (cross-site request forgery)"


def _has_session(headers: Headers) -> bool:
    return any(
        part.strip().startswith(SESSION_COOKIE + "=")
        for value in headers.getlist("cookie")
        for part in value.split(";")
    )


def from_page(headers: Headers, allowed: frozenset[str]) -> bool | None:
    """What the browser says of where a request comes from.

    True: this service's page (or an allowed origin); False: another origin; None: no
    word at all (not a browser, or a very old one).
    """
    site = headers.get("sec-fetch-site")
    if site == "same-origin":  # computed by the browser, whatever a proxy did to Host
        return True
    origin = headers.get("origin")
    if origin is not None:
        if origin.lower() in allowed:
            return True
        hosts = {headers.get("host", ""), headers.get("x-forwarded-host", "")}
        return origin != "null" and urlsplit(origin).netloc.lower() in {h.lower() for h in hosts}
    if site is not None:
        return site == "none"  # "none": the user's own action (typed, bookmarked)
    return None


class CsrfGuard:
    """403 for an unsafe request a browser sends from another origin.

    A request with an ``Authorization`` header passes: no page can make a browser add one
    to a cross-origin request without CORS allowing it. Otherwise the browser's word
    decides (``Sec-Fetch-Site``, ``Origin``), which also covers gateway mode, where the
    gateway's identity would ride along on a forged form post. A request with no such
    word passes (servers and apps send none) unless it carries the session cookie, or is
    ``POST /session`` (no signing a visitor in as someone else).
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self._app = app
        self._allowed = frozenset(o.lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE:
            headers = Headers(scope=scope)
            if "authorization" not in headers and not self._allows(scope, headers):
                response = error_response(ApiError(403, _REFUSED, code="forbidden"))
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _allows(self, scope: Scope, headers: Headers) -> bool:
        verdict = from_page(headers, self._allowed)
        if verdict is None:
            return not (_has_session(headers) or scope["path"] == "/session")
        return verdict
