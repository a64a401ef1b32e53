"""One error shape everywhere: ``{"error": "<code>", "detail": "<text>"}``."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.allow import allowed_methods

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """Raise anywhere in a handler to answer with the common error shape."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.headers = headers


def not_found() -> ApiError:
    return ApiError(404, "Task not found.")


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": error.code, "detail": error.detail}, error.status, headers=error.headers
    )


async def on_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def on_http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    headers = error.headers
    if error.status_code == 405:
        allowed = allowed_methods(request.app.router.routes, request.scope)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return error_response(ApiError(error.status_code, str(error.detail), headers=headers))


async def on_unavailable(request: Request, error: Exception) -> Response:
    detail = "the database is unavailable; try again shortly"
    return error_response(ApiError(503, detail, headers={"Retry-After": "2"}))


async def on_key_reused(request: Request, error: Exception) -> Response:
    # The IETF Idempotency-Key draft: 422 when "the key was used with a different request".
    detail = (
        "this Idempotency-Key was used before with a different request "
        "(another file or other fields); send a new key for a new upload"
    )
    return error_response(ApiError(422, detail))


async def on_key_contended(request: Request, error: Exception) -> Response:
    detail = "the task of this Idempotency-Key was being deleted meanwhile; try again"
    return error_response(ApiError(409, detail))


async def on_crash(request: Request, error: Exception) -> Response:
    return error_response(ApiError(500, "the server hit an unexpected error"))
