"""Reading a small request body (JSON) with a limit: never more than the limit is held."""

from __future__ import annotations

from starlette.requests import Request

from web.errors import ApiError

#: The JSON bodies of this API are a token or a few fields: 64 KiB is far more than enough.
JSON_BODY_LIMIT = 64 * 1024


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the body is larger than {limit} bytes")


async def read_small_body(request: Request, limit: int = JSON_BODY_LIMIT) -> bytes:
    """The whole body if it is at most ``limit`` bytes; a 413 as soon as it is not.

    A declared Content-Length past the limit is refused before a byte is read; a
    chunked body is counted as it arrives and dropped once it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)
