"""The OpenAI route's shapes, without a server: form checks, error bodies, verbose_json."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from speech import recognise
from store.records import TaskRecord
from web.errors import ApiError
from web.openai_shapes import (
    Refused,
    TranscriptionForm,
    error_body,
    language_name,
    parse_form,
    refused_of,
    verbose,
)

CONTEXT: dict[str, object] = {"languages": recognise.SUPPORTED}
WORDS = [
    {"text": "Hello", "start": 0.1, "end": 0.4, "confidence": 0.5},
    {"text": "there.", "start": 0.5, "end": 0.9, "confidence": 1.0},
    {"text": "Bye.", "start": 2.0, "end": 2.3, "confidence": 1.0},
]


def _record(**fields: object) -> TaskRecord:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(), "user_id": uuid.uuid4(), "title": "a.wav", "text_id": None,
        "reference_text": None, "language": "en", "status": "completed", "attempt": 1,
        "last_seq": 8, "transcript": "Hello there. Bye.", "result": None, "words": WORDS,
        "phonemes": None, "segments": None, "accuracy": None, "mistakes": None, "evaluation": None,
        "failure_reason": None, "webhook_url": None, "created_at": now, "started_at": now,
        "completed_at": now, "updated_at": now, "duration": 3.0, **fields,
    }  # fmt: skip
    return TaskRecord(**values)  # type: ignore[arg-type]


def _form(**fields: str) -> TranscriptionForm:
    granularities = fields.pop("granularities", "")
    return parse_form({"model": "whisper-1", **fields}, granularities.split(), CONTEXT)


def test_verbose_json_gives_segments_by_default_words_when_asked_and_both_together() -> None:
    record = _record()
    default = verbose(record, _form(response_format="verbose_json"), "embedded")
    words = verbose(record, _form(response_format="verbose_json", granularities="word"), "x")
    both = verbose(record, _form(response_format="verbose_json", granularities="word segment"), "x")
    assert "segments" in default
    assert "words" not in default
    assert "segments" not in words
    assert [w["word"] for w in words["words"]] == ["Hello", "there.", "Bye."]
    assert {"segments", "words"} <= set(both)
    # Segments made from the words: a sentence each; the mean log of their confidences.
    assert [(s["text"], s["start"], s["end"]) for s in default["segments"]] == [
        ("Hello there.", 0.1, 0.9),
        ("Bye.", 2.0, 2.3),
    ]
    assert default["segments"][0]["avg_logprob"] == pytest.approx(-0.34657, abs=1e-4)
    assert default["segments"][1]["avg_logprob"] == 0.0
    assert default["language"] == "english"
    assert default["transcriber"] == "embedded"
    assert "pronunciation" not in default


def test_verbose_json_uses_the_transcribers_segments_when_there_are_some() -> None:
    segments = [{"text": "Hello there. Bye.", "start": 0.0, "end": 2.5}]
    body = verbose(_record(segments=segments), _form(response_format="verbose_json"), "x")
    assert [(s["text"], s["start"], s["end"]) for s in body["segments"]] == [
        ("Hello there. Bye.", 0.0, 2.5)
    ]


def test_reference_text_brings_the_pronunciation() -> None:
    record = _record(reference_text="hello there", accuracy=75.0, mistakes=[], evaluation={})
    body = verbose(record, _form(response_format="verbose_json"), "x")
    assert body["pronunciation"] == {
        "reference_text": "hello there",
        "accuracy": 75.0,
        "mistakes": [],
        "evaluation": {},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"language": "fr"}, "language"),
        ({"response_format": "xml"}, "response_format"),
        ({"granularities": "char"}, "timestamp_granularities[]"),
        ({"granularities": "word"}, "timestamp_granularities[]"),  # without verbose_json
        ({"temperature": "1.5"}, "temperature"),
        ({"stream": "true"}, "stream"),
        ({"reference_text": "?!"}, "reference_text"),
    ],
)
def test_bad_fields_are_a_400_naming_the_field(fields: dict[str, str], param: str) -> None:
    with pytest.raises(Refused) as refused:
        _form(**fields)
    assert (refused.value.status, refused.value.param) == (400, param)
    body = error_body(refused.value)
    assert body == {
        "error": {
            "message": refused.value.message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def test_a_missing_model_is_refused_as_openai_refuses_it() -> None:
    with pytest.raises(Refused) as refused:
        parse_form({}, [], CONTEXT)
    assert refused.value.param == "model"


def test_the_services_own_errors_in_openai_terms() -> None:
    assert (refused_of(ApiError(422, "bad")).status, refused_of(ApiError(415, "x")).param) == (
        400,
        "file",
    )
    assert refused_of(ApiError(401, "who")).code == "invalid_api_key"
    unavailable = refused_of(ApiError(503, "later", headers={"Retry-After": "5"}))
    assert error_body(unavailable)["error"]["type"] == "server_error"
    assert unavailable.headers == {"Retry-After": "5"}


def test_language_names() -> None:
    assert [language_name(tag) for tag in ("en", "en-US", "en_gb", "english", "de")] == [
        "english",
        "english",
        "english",
        "english",
        "de",
    ]
