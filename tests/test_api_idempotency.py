"""Idempotency-Key: a repeat must be the same request; a repeat racing a DELETE."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import URL

from store.database import connect_arguments
from tests.input_helpers import SILENT, assert_invalid, count_tasks
from tests.service_helpers import Running, create, running_service

pytestmark = pytest.mark.anyio


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path) as running:
        yield running


# Idempotency-Key: the same key with a different request is refused.


async def test_an_idempotency_key_reused_with_another_file_or_fields_is_422(
    svc: Running, user: uuid.UUID
) -> None:
    key = {"Idempotency-Key": "upload-1"}
    first = await create(svc.client, user, SILENT, headers=key, title="first")
    assert first.status_code == 201
    other_file = await create(svc.client, user, SILENT + b"\0\0", headers=key, title="first")
    assert_invalid(other_file, "Idempotency-Key", "different request")
    for fields in (
        {"title": "second"},
        {"title": "first", "language": "en"},
        {"title": "first", "reference_text": "It was the best of times"},
        {"title": "first", "text_id": str(uuid.uuid4())},
    ):
        answer = await create(svc.client, user, SILENT, headers=key, **fields)
        assert_invalid(answer, "Idempotency-Key")
    same = await create(svc.client, user, SILENT, headers=key, title="first")
    assert same.status_code == 200
    assert same.json()["id"] == first.json()["id"]
    assert await count_tasks(svc, user) == 1


async def test_a_task_stored_without_a_fingerprint_matches_any_repeat_of_its_key(
    svc: Running, service_database_url: URL, user: uuid.UUID
) -> None:
    key = {"Idempotency-Key": "from-before-0003"}
    first = (await create(svc.client, user, SILENT, headers=key, title="a")).json()
    connection = await asyncpg.connect(**connect_arguments(service_database_url))
    try:  # as a row written before migration 0003 has it
        await connection.execute(
            "UPDATE tasks SET request_fingerprint = NULL WHERE id = $1", uuid.UUID(first["id"])
        )
    finally:
        await connection.close()
    repeat = await create(svc.client, user, SILENT + b"\0\0", headers=key, title="b")
    assert repeat.status_code == 200
    assert repeat.json()["id"] == first["id"]
