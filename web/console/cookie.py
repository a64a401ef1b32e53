"""The console's session cookie: it holds the bearer token, out of the page's reach."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

#: The cookie's name; ``__Host-`` would force Secure, which plain-HTTP development lacks.
SESSION_COOKIE = "stm_session"


def session_token(connection: HTTPConnection) -> str | None:
    """The token the session cookie holds, if the request carries one."""
    return connection.cookies.get(SESSION_COOKIE) or None


def set_session(response: Response, connection: HTTPConnection, token: str, seconds: int) -> None:
    """``HttpOnly`` (no script reads it), ``SameSite=Strict``, ``Secure`` over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(seconds, 0),  # expires with the token
        path="/",
        httponly=True,
        samesite="strict",
        secure=over_https(connection),
    )


def over_https(connection: HTTPConnection) -> bool:
    """The browser reached us over HTTPS: directly, or through a proxy that says so.

    uvicorn's proxy headers are off (the TCP peer must stay the peer), so the proxy's
    ``X-Forwarded-Proto`` is read here. Believing it from anyone is safe: a Secure
    cookie sent over plain HTTP only stops the browser from sending it back.
    """
    forwarded = connection.headers.get("x-forwarded-proto", "")
    return connection.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def clear_session(response: Response, connection: HTTPConnection) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=over_https(connection),
    )
