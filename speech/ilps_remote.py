"""The three ILPS stage services, as remote engines (requests per shared/docs/ILPS-CONTRACT.md).

Each takes a shared ``httpx.AsyncClient`` whose ``base_url`` is the service; the
pipeline closes it. The ILPS transcriber gives IPA tokens without times: its
phonemes carry 0.0 for both.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import httpx
from pydantic import BaseModel, Field

from .base import (
    AudioInput,
    Evaluation,
    NormalisedAudio,
    Phoneme,
    ProgressCallback,
    Transcription,
    TransientStageError,
)
from .decode import check_audio
from .languages import Languages
from .remote import parse, post
from .wav import from_wav, to_wav

_ENGLISH = frozenset({"en", "en-us", "en_us", "english"})


def _english(language: str) -> bool:
    return language.strip().lower() in _ENGLISH


#: The contract knows one ``lang``, ``english``: other languages are refused at creation.
SUPPORTED = Languages(
    _english, "en-US (also written en or english)", "the ILPS transcribing service"
)


class IlpsPreprocessor:
    """``POST /`` with the upload as ``audio.pcm``; the answer is a 16 kHz mono WAV."""

    #: The engine label of its metrics.
    engine = "ilps"

    def __init__(self, client: httpx.AsyncClient, max_seconds: float) -> None:
        self._client = client
        self._max_seconds = max_seconds

    async def preprocess(self, audio: AudioInput) -> NormalisedAudio:
        files = {"file": ("audio.pcm", audio.data, "application/octet-stream")}
        response = await post(self._client, "/", "preprocessing service", files=files)
        try:
            pcm = from_wav(response.content)
        except ValueError as exc:
            raise TransientStageError("the preprocessing service sent no 16 kHz mono WAV") from exc
        return check_audio(pcm, self._max_seconds)


class _TranscriptionAnswer(BaseModel):
    transcription: str


class IlpsTranscriber:
    """``POST /`` with ``lang`` and ``audio.wav``; the answer is ``{"transcription": "<ipa>"}``."""

    #: The engine label of its metrics.
    engine = "ilps"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def transcribe(
        self, audio: NormalisedAudio, language: str, progress: ProgressCallback
    ) -> Transcription:
        lang = "english" if _english(language) else language
        files = {"file": ("audio.wav", to_wav(audio.pcm), "audio/wav")}
        response = await post(
            self._client, "/", "transcribing service", data={"lang": lang}, files=files
        )
        answer = parse(_TranscriptionAnswer, response, "transcribing service")
        await progress(1.0)
        phonemes = tuple(Phoneme(token, 0.0, 0.0) for token in answer.transcription.split())
        return Transcription(answer.transcription, phonemes=phonemes)


class _Token(BaseModel):
    position: int = Field(ge=0)
    value: str


class _Mistake(BaseModel):
    reference: _Token | None
    actual: _Token | None
    type: Literal["Replacement", "Insertion", "Deletion"]


class _FeedbackAnswer(BaseModel):
    accuracy: float = Field(ge=0, le=100)
    mistakes: list[_Mistake]


class IlpsFeedbackEvaluator:
    """``POST /`` with ``{"text_id", "actual_result"}``; applies when the task has a text_id."""

    #: The engine label of its metrics.
    engine = "ilps"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    def applies(self, reference_text: str | None, text_id: UUID | None) -> bool:
        return text_id is not None

    async def evaluate(
        self,
        transcription: Transcription,
        reference_text: str | None,
        text_id: UUID | None,
        audio: NormalisedAudio | None = None,
    ) -> Evaluation | None:
        # The feedback service compares IPA: the audio is not sent.
        if text_id is None:
            return None
        body = {"text_id": str(text_id), "actual_result": transcription.ipa}
        response = await post(self._client, "/", "feedback service", json=body)
        answer = parse(_FeedbackAnswer, response, "feedback service")
        mistakes: list[dict[str, Any]] = [m.model_dump() for m in answer.mistakes]
        return Evaluation(accuracy=round(answer.accuracy, 2), mistakes=mistakes, method="remote")
