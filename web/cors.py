"""CORS for the origins in ``MANAGER_CORS_ORIGINS``: preflights and response headers.

A pure ASGI middleware (BaseHTTPMiddleware would buffer and break the SSE streams): it
answers preflights itself and only adds headers to other responses. A request from an
origin not on the list gets no CORS header at all, so the browser refuses its answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = "GET, POST, DELETE"
#: What a front-end sends: the bearer token, uploads, idempotency, a fetch-based SSE resume.
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
#: What a front-end may read beyond the CORS-safelisted headers.
EXPOSE_HEADERS = "Location, Retry-After, Content-Range, Accept-Ranges, WWW-Authenticate"
_MAX_AGE = "600"


class Cors:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self._app = app
        self._origins = frozenset(o.lower() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._origins:
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin.lower() not in self._origins:
            await self._app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                _allow(response_headers, origin)
                response_headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            await send(message)

        await self._app(scope, receive, send_with_cors)

    def _preflight(self, origin: str) -> Response:
        response = Response(status_code=204)
        _allow(response.headers, origin)
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = _MAX_AGE
        response.headers.add_vary_header("Access-Control-Request-Method")
        response.headers.add_vary_header("Access-Control-Request-Headers")
        return response


def _allow(headers: MutableHeaders, origin: str) -> None:
    # Credentials allowed, so the origin is echoed, never "*".
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Allow-Credentials"] = "true"
    headers.add_vary_header("Origin")
