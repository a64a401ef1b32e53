"""``GET /``: the console's page, and its static files under ``/console/``."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

#: Only the service's own files run, connect and play: an injected tag can do nothing.
_POLICY = "; ".join(
    [
        "default-src 'self'",
        "media-src 'self' blob:",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)


ROUTES: list[BaseRoute] = [
    Route("/", page, methods=["GET"], include_in_schema=False),
    Mount("/console", StaticFiles(directory=STATIC), name="console"),
]
