"""Pure ASGI middleware around the whole app: the request id and the HTTP metrics.

Outside Starlette's own error middleware, so that a 500 carries the id and is counted
too; pure ASGI (no ``BaseHTTPMiddleware``) so that event streams pass untouched.
"""

from __future__ import annotations

import os
import re
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ops import metrics
from ops.logs import REQUEST_ID, USER_ID

#: The longest request id taken from a client; the rest is cut off.
MAX_REQUEST_ID = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
_HEADER = b"x-request-id"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(raw: bytes | None) -> str:
    """The client's id with every character outside ``[A-Za-z0-9._:-]`` removed and cut
    to ``MAX_REQUEST_ID``, or a new one when that leaves nothing."""
    if raw:
        cleaned = _UNSAFE.sub("", raw[: MAX_REQUEST_ID * 4].decode("latin-1"))[:MAX_REQUEST_ID]
        if cleaned:
            return cleaned
    return os.urandom(16).hex()  # random like a uuid4, a quarter of its cost


def route_of(scope: Scope) -> str:
    """The matched route's template (``/tasks/{task_id}``), never the path itself."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class Observed:
    """Gives each request its id (echoed in ``X-Request-ID``) and measures its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: Each label combination's series, looked up once (``labels()`` takes a lock).
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((value for name, value in scope["headers"] if name == _HEADER), None)
        request_id = request_id_of(raw)
        REQUEST_ID.set(request_id)
        USER_ID.set(None)
        header = (_HEADER, request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            count, seconds = self._of(route_of(scope), scope["method"], status)
            count.inc()
            seconds.observe(time.perf_counter() - started)

    def _of(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            method = method if method in _METHODS else "OTHER"
            series = (
                metrics.HTTP_REQUESTS.labels(route, method, str(status)),
                metrics.HTTP_SECONDS.labels(route, method),
            )
            if len(self._series) < 10_000:  # bounded: routes x methods x statuses
                self._series[key] = series
        return series
