"""The shared fixtures keep tests apart."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import URL

from store.database import open_database
from store.records import NewTask, NewUpload
from store.tasks import TaskStore

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_every_service_test_starts_from_an_empty_database(
    service_database_url: URL, turn: str
) -> None:
    """A running service recovers every live task it finds: one left by an earlier
    test would take engine slots and stage calls from this one."""
    async with open_database(service_database_url, pool_size=1) as database:
        store = TaskStore(database)
        assert await store.count() == 0, f"the {turn} test found tasks left by another"
        digest = hashlib.sha256(b"x").hexdigest()
        await store.create(
            NewTask(uuid.uuid4(), turn, "en-US"), NewUpload(b"x", "a.wav", "audio/wav", digest)
        )
