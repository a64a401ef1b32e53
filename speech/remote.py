"""Calling a remote engine: which failures are worth a retry, and validating the answer.

Refused connections, timeouts, 5xx, 408, 425 and 429 are transient; other 3xx and
4xx answers are permanent (the request itself is wrong for that service). An
answer that fails validation is transient too: the actor's retries are bounded,
and a garbled answer is as often a proxy or overload glitch as a bug.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from .base import PermanentStageError, TransientStageError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_RETRYABLE = frozenset({408, 425, 429})


async def post(client: httpx.AsyncClient, url: str, what: str, **request: Any) -> httpx.Response:
    """POST to a remote engine, turning every failure into a stage error for ``what``.

    The reason (a task's ``failure_reason``) names the service and the HTTP status
    only; what the service said, and why a connection failed, go to the log.
    """
    try:
        response = await client.post(url, **request)
    except httpx.TimeoutException as exc:
        log.warning("the %s did not answer in time: %r", what, exc)
        raise TransientStageError(f"the {what} did not answer in time") from exc
    except httpx.HTTPError as exc:
        log.warning("the %s could not be reached: %r", what, exc)
        raise TransientStageError(f"the {what} could not be reached") from exc
    return classify(response, what)


def classify(response: httpx.Response, what: str) -> httpx.Response:
    """The answer itself when it is a success; else the stage error its status means."""
    status = response.status_code
    if status >= 300:
        log.warning("the %s answered HTTP %d: %s", what, status, _detail(response))
    if status >= 500 or status in _RETRYABLE:
        raise TransientStageError(f"the {what} is unavailable (HTTP {status})")
    if status >= 300:
        raise PermanentStageError(f"the {what} refused the request (HTTP {status})")
    return response


def _detail(response: httpx.Response) -> str:
    """The start of an error answer's body, for the log."""
    return response.text[:500]


def parse(model: type[M], response: httpx.Response, what: str) -> M:
    """Validate a JSON answer; a malformed one is a transient error with a reason."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        log.warning("the %s sent an answer that does not validate: %s", what, exc)
        raise TransientStageError(f"the {what} sent an answer we cannot read") from exc
