"""Request values checked before any query runs: event seqs, list dates, create fields.

Each bound here is one the database or Python would otherwise trip over (an int4
seq, a timestamptz that overflows on its way to UTC), or one whose violation would
only show later, as a failed task (a language no engine recognises, a reference
text with no words to score).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from speech.languages import Languages
from speech.pronounce import words_of
from store.instants import representable
from web.errors import ApiError

#: Event seqs are PostgreSQL ``integer``s.
SEQ_MAX = 2**31 - 1
#: ASCII digits only: ``str.isdigit`` also takes "²" and other scripts' digits.
_SEQ = re.compile(r"[0-9]{1,10}")

#: What the OpenAPI document says of a list date (JSON Schema has no bounds for one).
INSTANT_RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once converted to UTC"


def parse_seq(raw: str) -> int:
    """An event seq (0..2**31-1) as sent in ``Last-Event-ID``; surrounding spaces are fine."""
    text = raw.strip()
    if not _SEQ.fullmatch(text) or int(text) > SEQ_MAX:
        raise ApiError(422, f"Last-Event-ID must be an event's seq: an integer from 0 to {SEQ_MAX}")
    return int(text)


def last_event_id(request: Request) -> int:
    """The seq a client has seen: the ``Last-Event-ID`` header, else ``?last_event_id=``."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    return parse_seq(raw or "0")


def _instant(moment: datetime) -> datetime:
    if not representable(moment):
        raise PydanticCustomError("date_out_of_range", f"the time must be {INSTANT_RANGE}")
    return moment


#: A list filter date: any ISO 8601 date-time that stays within range in UTC.
Instant = Annotated[datetime, AfterValidator(_instant)]


def _scorable(text: str) -> str:
    if not words_of(text):
        raise PydanticCustomError(
            "no_words",
            "the reference text has no words to score against (letters a-z or digits); "
            "leave the field out to skip scoring",
        )
    return text


#: A reference text: at least one word the evaluator can pronounce.
ReferenceText = Annotated[
    str,
    Field(max_length=10_000, description="At least one word to score: letters a-z or digits"),
    AfterValidator(_scorable),
]


def _supported(language: str, info: ValidationInfo) -> str:
    languages = info.context.get("languages") if isinstance(info.context, dict) else None
    if isinstance(languages, Languages) and not languages.accepts(language):
        raise PydanticCustomError(
            "unsupported_language",
            "{engine} does not recognise this language; it supports {names}",
            {"engine": languages.engine, "names": languages.names},
        )
    return language


#: A language tag, checked against the configured transcriber when the
#: validation context carries its ``languages``.
Language = Annotated[
    str,
    Field(
        min_length=2,
        max_length=16,
        description="One the configured transcriber recognises (the embedded one: en-US)",
    ),
    AfterValidator(_supported),
]
