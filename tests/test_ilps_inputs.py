"""The ILPS legacy routes at the edges: resume ids that are no seq, tasks never scored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from tests.ilps_helpers import read_whole, transcribe
from tests.service_helpers import Running, running_service

pytestmark = pytest.mark.anyio

#: Half a second of silence as the Android app sends it: a task that fails at once.
SILENT_PCM = b"\0" * 88_200


@pytest.fixture
async def svc(service_database_url: URL, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as running:
        yield running


@pytest.mark.parametrize("raw", [b"\xb2", b"99999999999", b"2147483648"])
async def test_a_legacy_last_event_id_that_is_not_a_seq_is_422(
    svc: Running, user: uuid.UUID, raw: bytes
) -> None:
    task_id = (await transcribe(svc.client, user, SILENT_PCM)).json()["id"]
    answer = await svc.client.post(
        f"/{task_id}/stream",
        json={"user_id": str(user)},
        headers={b"Last-Event-ID": raw},
    )
    assert answer.status_code == 422, answer.text
    assert "Last-Event-ID" in answer.json()["detail"]


async def test_mistakes_is_always_a_list_on_the_legacy_detail(
    svc: Running, user: uuid.UUID
) -> None:
    """The Android app calls ``mistakes.filter``: a task not scored has an empty list.

    (A completed task that was not scored: tests/test_ilps_routes.py.)"""
    task_id = (await transcribe(svc.client, user, SILENT_PCM)).json()["id"]
    body = {"user_id": str(user)}
    fresh = (await svc.client.post(f"/{task_id}", json=body)).json()
    assert fresh["mistakes"] == []
    with anyio.fail_after(60):
        await read_whole(svc.client, user, task_id)
    failed = (await svc.client.post(f"/{task_id}", json=body)).json()
    assert failed["status"] == "failed"
    assert failed["mistakes"] == []
