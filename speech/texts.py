"""ILPS's texts service: the reference text of a ``text_id`` (shared/docs/ILPS-CONTRACT.md).

``GET /{text_id}`` answers ``{"id", "title", "value", "transcription"}``; ``value`` is
the text. A 404 is permanent (the task names a text that does not exist); the rest
follows ``remote.py`` (connection errors, timeouts and 5xx are worth a retry).
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import httpx
from pydantic import BaseModel

from .base import PermanentStageError, TransientStageError
from .remote import classify, parse


class TextSource(Protocol):
    async def text(self, text_id: UUID) -> str:
        """The reference text of ``text_id``."""
        ...


class _TextAnswer(BaseModel):
    value: str


class IlpsTexts:
    """The texts service behind a shared client whose ``base_url`` is the service."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def text(self, text_id: UUID) -> str:
        what = "texts service"
        try:
            response = await self._client.get(f"/{text_id}")
        except httpx.TimeoutException as exc:
            raise TransientStageError(f"the {what} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise TransientStageError(
                f"the {what} could not be reached ({type(exc).__name__})"
            ) from exc
        if response.status_code == 404:
            raise PermanentStageError(f"the {what} has no text {text_id}")
        classify(response, what)
        value = parse(_TextAnswer, response, what).value
        if not value.strip():
            raise PermanentStageError(f"the {what} has an empty text {text_id}")
        return value
