"""Inputs at the edges: each is a clear 422 (or the right answer), never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import URL

from store.cursor import encode_cursor
from tests.input_helpers import SILENT, assert_invalid, count_tasks
from tests.service_helpers import Running, auth, create, running_service

pytestmark = pytest.mark.anyio


#: Past the ends of Python's datetime range once converted to UTC.
EARLY = "0001-01-01T00:00:00+14:00"
LATE = "9999-12-31T23:59:59-14:00"


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xb2", id="superscript-two"),  # "²" in Latin-1, as headers are read
        pytest.param(b"99999999999", id="past-int4"),
        pytest.param(b"2147483648", id="int4-max-plus-one"),
        pytest.param(b"-1", id="negative"),
    ],
)
async def test_a_last_event_id_that_is_not_a_seq_is_422(
    svc: Running, user: uuid.UUID, raw: bytes
) -> None:
    task = (await create(svc.client, user, SILENT)).json()
    path = f"/tasks/{task['id']}/events"
    headers = {key.encode(): value.encode() for key, value in auth(user).items()}
    header = await svc.client.get(path, headers={**headers, b"Last-Event-ID": raw})
    assert_invalid(header, "Last-Event-ID", "2147483647")
    query = await svc.client.get(
        path, params={"last_event_id": raw.decode("latin-1")}, headers=auth(user)
    )
    assert_invalid(query, "Last-Event-ID")


async def test_the_largest_seq_is_a_valid_last_event_id(svc: Running, user: uuid.UUID) -> None:
    task = (await create(svc.client, user, SILENT)).json()
    async with svc.client.stream(
        "GET",
        f"/tasks/{task['id']}/events",
        headers={**auth(user), "Last-Event-ID": "2147483647"},
    ) as response:
        assert response.status_code in (200, 204)


@pytest.mark.parametrize(
    ("name", "value"),
    [("created_after", EARLY), ("created_before", LATE), ("created_after", LATE)],
)
async def test_list_dates_past_the_range_in_utc_are_422(
    svc: Running, user: uuid.UUID, name: str, value: str
) -> None:
    answer = await svc.client.get("/tasks", params={name: value}, headers=auth(user))
    assert_invalid(answer, name, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")


async def test_list_dates_at_the_very_ends_of_the_range_are_accepted(
    svc: Running, user: uuid.UUID
) -> None:
    task = (await create(svc.client, user, SILENT)).json()
    params = {"created_after": "0001-01-01T00:00:00Z", "created_before": "9999-12-31T23:59:59Z"}
    answer = await svc.client.get("/tasks", params=params, headers=auth(user))
    assert answer.status_code == 200, answer.text
    assert [item["id"] for item in answer.json()["items"]] == [task["id"]]


@pytest.mark.parametrize("offset", [14, -14])
async def test_a_cursor_holding_a_date_past_the_range_is_422(
    svc: Running, user: uuid.UUID, offset: int
) -> None:
    zone = timezone(timedelta(hours=offset))
    moment = datetime.min if offset > 0 else datetime.max
    cursor = encode_cursor(moment.replace(tzinfo=zone), uuid.uuid4())
    answer = await svc.client.get("/tasks", params={"cursor": cursor}, headers=auth(user))
    assert_invalid(answer, "cursor")


async def test_the_openapi_document_states_the_bounds_of_seqs_and_dates(svc: Running) -> None:
    spec = (await svc.client.get("/openapi.json")).json()
    events = spec["paths"]["/tasks/{task_id}/events"]["get"]["parameters"]
    for parameter in events:
        assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2147483647}
    listing = {p["name"]: p for p in spec["paths"]["/tasks"]["get"]["parameters"]}
    for name in ("created_after", "created_before"):
        schema = listing[name]["schema"]
        assert schema["format"] == "date-time"
        assert "0001-01-01T00:00:00Z" in listing[name]["description"]
        assert "9999-12-31T23:59:59.999999Z" in listing[name]["description"]


# The language and the reference text are checked when the task is created.


@pytest.mark.parametrize("language", ["fr-FR", "de", "xx", "!!"])
async def test_a_language_the_recogniser_does_not_support_is_422_and_names_the_supported(
    svc: Running, user: uuid.UUID, language: str
) -> None:
    answer = await create(svc.client, user, SILENT, language=language)
    assert_invalid(answer, "language", "en-US")
    assert await count_tasks(svc, user) == 0


@pytest.mark.parametrize("language", ["en-US", "en", "english", "EN_us"])
async def test_the_embedded_recognisers_languages_are_accepted(
    svc: Running, user: uuid.UUID, language: str
) -> None:
    answer = await create(svc.client, user, SILENT, language=language)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("text", ["", "   ", "?!... -- ;", "\u201c\u201d"])
async def test_a_reference_text_with_no_words_is_422(
    svc: Running, user: uuid.UUID, text: str
) -> None:
    answer = await create(svc.client, user, SILENT, reference_text=text)
    assert_invalid(answer, "reference_text", "no words")
    assert await count_tasks(svc, user) == 0


async def test_an_unknown_list_parameter_is_422_as_the_readme_says(
    svc: Running, user: uuid.UUID
) -> None:
    assert_invalid(await svc.client.get("/tasks?foo=1", headers=auth(user)), "foo")
    assert_invalid(await svc.client.get("/tasks?statuses=failed", headers=auth(user)), "statuses")
    assert (await svc.client.get("/tasks?status=failed", headers=auth(user))).status_code == 200


async def test_an_unknown_form_field_is_422_and_nothing_is_written(
    svc: Running, user: uuid.UUID
) -> None:
    """A misspelt field (``titel``) would otherwise make a task without it, silently."""
    assert_invalid(await create(svc.client, user, SILENT, titel="mine"), "titel")
    assert await count_tasks(svc, user) == 0
