"""``GET /metrics``: the Prometheus text format, behind an optional bearer token."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops.metrics import exposition
from web.context import services
from web.errors import ApiError


async def metrics(request: Request) -> Response:
    token = services(request).settings.metrics_token
    if token is not None:
        scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), expected):
            raise ApiError(
                401, "the metrics token is required", headers={"WWW-Authenticate": "Bearer"}
            )
    body, content_type = exposition()
    return Response(body, headers={"Content-Type": content_type})


ROUTES = [Route("/metrics", metrics, methods=["GET"], include_in_schema=False)]
