"""GET /tasks/{id}/audio answers Range requests (206, 416, Accept-Ranges), as <audio> seeks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import URL

from tests.service_helpers import Running, auth, create, running_service
from tests.stages_helpers import wav_of
from web.ranges import ByteRange, Unsatisfiable, parse_range

pytestmark = pytest.mark.anyio

SILENT = wav_of(np.zeros(16_000, dtype=np.int16), 16_000)


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


async def _audio_path(svc: Running, user: uuid.UUID) -> str:
    task = (await create(svc.client, user, SILENT)).json()
    return f"/tasks/{task['id']}/audio"


async def test_the_whole_recording_says_it_accepts_ranges(svc: Running, user: uuid.UUID) -> None:
    answer = await svc.client.get(await _audio_path(svc, user), headers=auth(user))
    assert answer.status_code == 200
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.content == SILENT


async def test_a_range_is_206_with_exactly_those_bytes(svc: Running, user: uuid.UUID) -> None:
    path = await _audio_path(svc, user)
    size = len(SILENT)
    for header, start, end in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, size - 1),
        ("bytes=-10", size - 10, size - 1),
        (f"bytes=10-{size * 2}", 10, size - 1),
    ):
        answer = await svc.client.get(path, headers={**auth(user), "Range": header})
        assert answer.status_code == 206, header
        assert answer.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert answer.content == SILENT[start : end + 1]
        assert answer.headers["content-length"] == str(end - start + 1)


async def test_a_range_past_the_end_is_416_with_the_size(svc: Running, user: uuid.UUID) -> None:
    path = await _audio_path(svc, user)
    answer = await svc.client.get(path, headers={**auth(user), "Range": f"bytes={len(SILENT)}-"})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{len(SILENT)}"
    assert answer.json()["error"] == "range_not_satisfiable"


async def test_a_range_we_do_not_serve_gets_the_whole_body(svc: Running, user: uuid.UUID) -> None:
    path = await _audio_path(svc, user)
    for header in ("bytes=0-1,5-9", "items=0-1", "bytes=9-2", "bytes=x-"):
        answer = await svc.client.get(path, headers={**auth(user), "Range": header})
        assert answer.status_code == 200, header
        assert answer.content == SILENT


async def test_another_users_recording_is_404_whatever_the_range(
    svc: Running, user: uuid.UUID
) -> None:
    path = await _audio_path(svc, user)
    answer = await svc.client.get(path, headers={**auth(uuid.uuid4()), "Range": "bytes=0-1"})
    assert answer.status_code == 404


def test_parse_range_reads_one_byte_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == ByteRange(2, 4)
    assert parse_range("bytes=2-", 10) == ByteRange(2, 9)
    assert parse_range("bytes=-20", 10) == ByteRange(0, 9)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-0", 10)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)


def test_ranges_with_other_digits_or_huge_numbers_are_never_a_crash() -> None:
    assert parse_range("bytes=\u00b2-", 10) is None  # "²".isdigit(), yet no int
    assert parse_range("bytes=\u0663-\u0664", 10) is None  # Arabic-Indic digits
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=" + "9" * 5000 + "-", 10)
    assert parse_range("bytes=0-" + "9" * 5000, 10) == ByteRange(0, 9)
    assert parse_range("bytes=-" + "9" * 5000, 10) == ByteRange(0, 9)
