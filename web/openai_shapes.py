"""The OpenAI audio API's shapes: its request form, its answers and its error body.

Facts from the OpenAI API reference (``POST /v1/audio/transcriptions``); only this
route answers errors as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from starlette.responses import JSONResponse

from store.records import TaskRecord
from transcripts.timing import Timed, words_within
from web.errors import ApiError
from web.params import Language, ReferenceText
from web.transcript_view import Finished

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Granularity = Literal["word", "segment"]

#: The form field the SDKs send a list in (``timestamp_granularities[]``), and its plain name.
GRANULARITIES = ("timestamp_granularities[]", "timestamp_granularities")


class TranscriptionForm(BaseModel):
    """The text fields of ``POST /v1/audio/transcriptions`` beside ``file``."""

    model: str = Field(
        min_length=1,
        max_length=200,
        description="Accepted; the configured transcriber answers (X-Transcriber says which)",
    )
    language: Language = Field("en-US", description="ISO-639-1 (en), or a tag (en-US)")
    prompt: str | None = Field(None, max_length=10_000, description="Accepted and ignored")
    response_format: ResponseFormat = "json"
    timestamp_granularities: list[Granularity] = Field(
        default_factory=list, description="With verbose_json: word and/or segment"
    )
    temperature: float = Field(0.0, ge=0.0, le=1.0, description="Accepted and ignored")
    stream: bool = Field(False, description="Only false: answers are never streamed")
    reference_text: ReferenceText | None = Field(
        None, description="Extension: score the reading against this text (verbose_json)"
    )


class Refused(Exception):
    """A request this route refuses, in OpenAI's terms."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def parse_form(
    fields: Mapping[str, str], granularities: Sequence[str], context: dict[str, object]
) -> TranscriptionForm:
    """The form, checked: a 400 naming the first field at fault otherwise."""
    raw: dict[str, Any] = {k: v for k, v in fields.items() if k not in GRANULARITIES}
    raw["timestamp_granularities"] = list(granularities)
    try:
        form = TranscriptionForm.model_validate(raw, context=context)
    except ValidationError as error:
        first = error.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        if param == "timestamp_granularities":
            param = GRANULARITIES[0]
        message = f"{param}: {first['msg']}" if param else first["msg"]
        raise Refused(400, message, param=param) from None
    if form.stream:
        raise Refused(400, "streaming transcriptions are not supported", param="stream")
    if form.timestamp_granularities and form.response_format != "verbose_json":
        raise Refused(
            400,
            "timestamp_granularities[] needs response_format verbose_json",
            param="timestamp_granularities[]",
        )
    return form


def error_body(refused: Refused) -> dict[str, Any]:
    kind = "server_error" if refused.status >= 500 else "invalid_request_error"
    return {
        "error": {
            "message": refused.message,
            "type": kind,
            "param": refused.param,
            "code": refused.code,
        }
    }


def error_response(refused: Refused) -> JSONResponse:
    return JSONResponse(error_body(refused), refused.status, headers=refused.headers)


#: The service's own errors as OpenAI's: a 422 of the native API is OpenAI's 400.
_STATUSES = {422: 400, 415: 400}
_CODES = {401: "invalid_api_key", 413: "file_too_large", 415: "invalid_file_format"}


def refused_of(error: ApiError) -> Refused:
    """A native error (auth, upload, shutdown) in this route's shape."""
    param = "file" if error.status in (413, 415) else None
    return Refused(
        _STATUSES.get(error.status, error.status),
        error.detail,
        param=param,
        code=_CODES.get(error.status),
        headers=error.headers,
    )


def language_name(language: str) -> str:
    """What Whisper calls the language in ``verbose_json`` for English; other tags as given."""
    code = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return "english" if code in ("en", "english") else language


def verbose(
    record: TaskRecord,
    form: TranscriptionForm,
    transcriber: str,
) -> dict[str, Any]:
    """``verbose_json``: OpenAI's fields, then this service's (``task_id``, ``transcriber``,
    and ``pronunciation`` when a ``reference_text`` was given)."""
    finished = Finished.of(record)
    wanted = set(form.timestamp_granularities) or {"segment"}
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(record.language),
        "duration": record.duration or 0.0,
        "text": finished.transcript,
    }
    if "segment" in wanted:
        body["segments"] = _segments(finished)
    if "word" in wanted:
        body["words"] = [
            {
                "word": w["text"],
                "start": w["start"],
                "end": w["end"],
                "probability": w["confidence"],
            }
            for w in finished.words
        ]
    body["task_id"] = str(record.id)
    body["transcriber"] = transcriber
    if record.reference_text is not None:
        body["pronunciation"] = {
            "reference_text": record.reference_text,
            "accuracy": record.accuracy,
            "mistakes": record.mistakes,
            "evaluation": record.evaluation,
        }
    return body


def _segments(finished: Finished) -> list[dict[str, Any]]:
    sections = finished.sections()
    heard = words_within(finished.timed_words(), sections)
    return [
        {
            "id": index,
            "seek": 0,
            "start": section.start,
            "end": section.end,
            "text": section.text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": _mean_log(words),
            "compression_ratio": _compression_ratio(section.text),
            "no_speech_prob": 0.0,
        }
        for index, (section, words) in enumerate(zip(sections, heard, strict=True))
    ]


def _mean_log(words: Sequence[Timed]) -> float:
    """The mean natural log of the words' confidences (Whisper's ``avg_logprob`` is the
    mean log probability of the segment's tokens); 0.0 without words."""
    values = [math.log(max(w.confidence, 1e-6)) for w in words]
    return sum(values) / len(values) if values else 0.0


def _compression_ratio(text: str) -> float:
    """As Whisper measures repetitiveness: the text's bytes over their zlib size."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
