"""The OpenAPI paths of the transcript download and the OpenAI-compatible route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from web.openai_shapes import TranscriptionForm


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, or server_error for a 5xx")
    param: str | None = Field(description="The form field at fault, when one is")
    code: str | None


class OpenAIErrorOut(BaseModel):
    """The error shape of ``/v1/audio/transcriptions`` (OpenAI's)."""

    error: OpenAIErrorDetail


class TranscriptionOut(BaseModel):
    """``response_format=json``."""

    text: str


class TranscriptionWordOut(BaseModel):
    word: str
    start: float
    end: float
    probability: float = Field(description="The recogniser's confidence, 0..1")


class TranscriptionSegmentOut(BaseModel):
    id: int
    seek: int = Field(description="Always 0")
    start: float
    end: float
    text: str
    tokens: list[int] = Field(description="Always empty")
    temperature: float = Field(description="Always 0.0")
    avg_logprob: float = Field(description="The mean natural log of its words' confidences")
    compression_ratio: float = Field(description="Its UTF-8 bytes over their zlib size")
    no_speech_prob: float = Field(description="Always 0.0")


class PronunciationOut(BaseModel):
    """Extension: present when the request had a ``reference_text``."""

    reference_text: str
    accuracy: float | None
    mistakes: list[dict[str, Any]] | None
    evaluation: dict[str, Any] | None = Field(description="As GET /tasks/{id} shows it")


class VerboseTranscriptionOut(BaseModel):
    """``response_format=verbose_json``: OpenAI's fields, then this service's."""

    task: str = Field(description="Always transcribe")
    language: str = Field(description="english for English, other languages as sent")
    duration: float
    text: str
    segments: list[TranscriptionSegmentOut] | None = Field(
        None, description="With the segment granularity (the default)"
    )
    words: list[TranscriptionWordOut] | None = Field(None, description="With the word one")
    task_id: str = Field(description="Extension: the task behind the answer")
    transcriber: str = Field(description="Extension: the transcriber that answered")
    pronunciation: PronunciationOut | None = None


class PendingOut(BaseModel):
    """202: the task was not done in time (or the service is restarting); it goes on."""

    task_id: str
    status: str
    url: str = Field(description="GET it (or its /events) for the result")
    message: str


MODELS: list[type[BaseModel]] = [
    OpenAIErrorOut,
    TranscriptionOut,
    VerboseTranscriptionOut,
    PendingOut,
]

Json = Callable[[type[BaseModel], str], dict[str, Any]]
Errors = Callable[..., dict[str, Any]]
Ref = Callable[[type[BaseModel]], dict[str, Any]]

_TEXT = {"schema": {"type": "string"}}


def _form_schema() -> dict[str, Any]:
    properties = TranscriptionForm.model_json_schema()["properties"]
    properties.pop("timestamp_granularities")
    granularities = {
        "type": "array",
        "items": {"type": "string", "enum": ["word", "segment"]},
        "description": "With verbose_json: word and/or segment (default segment)",
    }
    return {
        "type": "object",
        "required": ["file", "model"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            **properties,
            "timestamp_granularities[]": granularities,
        },
    }


def paths(json: Json, errors: Errors, ref: Ref, *, task_id: dict[str, Any]) -> dict[str, Any]:
    def openai_errors(*codes: int) -> dict[str, Any]:
        return {
            str(code): {
                "description": "Error (OpenAI's shape)",
                "content": {"application/json": {"schema": ref(OpenAIErrorOut)}},
            }
            for code in codes
        }

    return {
        "/tasks/{task_id}/transcript": {
            "parameters": [task_id],
            "get": {
                "summary": "A completed task's transcript as text, subtitles or JSON, to save",
                "description": "Cues follow the transcriber's segments, cut at word times to"
                " at most two lines of 42 characters and 7 seconds. `Content-Disposition`"
                " names the file after the task's title.",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": ["txt", "srt", "vtt", "json"],
                            "default": "txt",
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The transcript",
                        "content": {
                            "text/plain": _TEXT,
                            "application/x-subrip": _TEXT,
                            "text/vtt": _TEXT,
                            "application/json": {"schema": {"type": "object"}},
                        },
                    },
                    **errors(401, 404, 409, 422, 503),
                },
            },
        },
        "/v1/audio/transcriptions": {
            "post": {
                "summary": "OpenAI-compatible transcription: a task, answered when it ends",
                "description": "As OpenAI's `POST /v1/audio/transcriptions`; the task is an"
                " ordinary one (listed, in the console). `model`, `prompt` and `temperature`"
                " are accepted and do not change the result. `reference_text` (extension)"
                " adds `pronunciation` to verbose_json. If the caller hangs up, the task is"
                " cancelled; past MANAGER_TRANSCRIPTION_WAIT_SECONDS the answer is 202 with"
                " the task's URL. Headers `X-Task-ID` and `X-Transcriber` say which task and"
                " transcriber answered.",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _form_schema()}},
                },
                "responses": {
                    "200": {
                        "description": "The transcription, in the response_format asked for",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [ref(TranscriptionOut), ref(VerboseTranscriptionOut)]
                                }
                            },
                            "text/plain": _TEXT,
                            "application/x-subrip": _TEXT,
                            "text/vtt": _TEXT,
                        },
                    },
                    "202": json(PendingOut, "Not done in time: the task goes on"),
                    **openai_errors(400, 401, 404, 405, 409, 413, 422, 503),
                },
            },
        },
    }
