"""``/session``: the console trades a bearer token for its session cookie, says who is
signed in, and signs out."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from web.auth import Caller
from web.bodies import read_small_body
from web.console.cookie import clear_session, set_session
from web.context import services
from web.errors import ApiError


def _who(request: Request, caller: Caller) -> dict[str, object]:
    app = services(request)
    expires = (
        None
        if math.isinf(caller.expires)
        else datetime.fromtimestamp(caller.expires, UTC).isoformat()
    )
    return {
        "user_id": str(caller.user_id),
        "operator": app.is_operator(caller),
        "auth_mode": app.auth.mode,
        "expires_at": expires,
    }


async def _token_of(request: Request) -> str:
    try:
        body = json.loads(await read_small_body(request))
    except (ValueError, UnicodeDecodeError):
        body = None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token.strip() or len(token) > 8192:
        raise ApiError(422, 'the body must be JSON: {"token": "<the bearer token>"}')
    return token.strip()


async def sign_in(request: Request) -> Response:
    """Check the token, then hand it back as an HttpOnly cookie that expires with it."""
    app = services(request)
    if app.auth.mode == "gateway":
        raise ApiError(409, "sign-in is the gateway's: this service trusts its user header")
    token = await _token_of(request)
    caller = app.auth.session(token)
    response = JSONResponse(_who(request, caller))
    set_session(response, request, token, int(caller.expires - time.time()))
    return response


async def whoami(request: Request) -> Response:
    return JSONResponse(_who(request, services(request).auth.caller(request)))


async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    clear_session(response, request)
    return response


ROUTES = [
    Route("/session", sign_in, methods=["POST"]),
    Route("/session", whoami, methods=["GET"]),
    Route("/session", sign_out, methods=["DELETE"]),
]
