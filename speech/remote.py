"""Calling a remote engine: which failures are worth a retry, and validating the answer.

Refused connections, timeouts, 5xx, 408, 425 and 429 are transient; other 3xx and
4xx answers are permanent (the request itself is wrong for that service). An
answer that fails validation is transient too: the actor's retries are bounded,
and a garbled answer is as often a proxy or overload glitch as a bug.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .base import PermanentStageError, TransientStageError

M = TypeVar("M", bound=BaseModel)

_RETRYABLE = frozenset({408, 425, 429})


async def post(client: httpx.AsyncClient, url: str, what: str, **request: Any) -> httpx.Response:
    """POST to a remote engine, turning every failure into a stage error for ``what``."""
    try:
        response = await client.post(url, **request)
    except httpx.TimeoutException as exc:
        raise TransientStageError(f"the {what} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise TransientStageError(
            f"the {what} could not be reached ({type(exc).__name__})"
        ) from exc
    return classify(response, what)


def classify(response: httpx.Response, what: str) -> httpx.Response:
    """The answer itself when it is a success; else the stage error its status means."""
    status = response.status_code
    if status >= 500 or status in _RETRYABLE:
        raise TransientStageError(f"the {what} failed (HTTP {status})")
    if status >= 300:
        detail = _detail(response)
        raise PermanentStageError(
            f"the {what} refused the request (HTTP {status}{': ' + detail if detail else ''})"
        )
    return response


def _detail(response: httpx.Response) -> str:
    """The short message a JSON error answer carries (FastAPI ``detail``, OpenAI ``error``)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else body.get("detail")
        if isinstance(message, str):
            return message[:200]
    return ""


def parse(model: type[M], response: httpx.Response, what: str) -> M:
    """Validate a JSON answer; a malformed one is a transient error with a reason."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise TransientStageError(f"the {what} sent an answer we cannot read") from exc
