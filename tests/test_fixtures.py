"""The shared fixtures keep tests apart."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from store.database import open_database
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from tests.cluster_helpers import connect_to, fetch, shared_database, terminate_backends
from tests.process_helpers import ROOT

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


def test_ending_a_named_session_reaches_only_the_tests_own_database() -> None:
    """The machine's server is shared: a test that ends "the listener of A" must not
    end the listener of every other run's instance A."""
    name = f"stm listener fixture-{uuid.uuid4().hex[:8]}"

    async def survives(mine: str, theirs: str) -> None:
        settings = {"application_name": name}
        other = await asyncpg.connect(**connect_to(theirs), server_settings=settings)
        try:
            await anyio.to_thread.run_sync(terminate_backends, mine, name)
            assert await other.fetchval("SELECT 1") == 1  # still there
        finally:
            await other.close()

    with shared_database() as mine, shared_database() as theirs:
        anyio.run(survives, mine, theirs)


_PROBE = """
from tests.conftest import empty_database


def test_probe(database_url, service_database_url, tmp_path):
    made = empty_database("machine", tmp_path)
    names = [database_url.database, service_database_url.database, made.database]
    open({out!r}, "w").write(",".join(names))
"""


def test_the_databases_a_session_creates_are_dropped_at_its_end(tmp_path: Path) -> None:
    out = tmp_path / "names"
    probe = tmp_path / "test_probe.py"
    probe.write_text(_PROBE.format(out=str(out)))
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-c", "/dev/null"]
        + ["--rootdir", str(tmp_path), "-k", "machine", "-p", "no:cacheprovider", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    names = out.read_text().split(",")
    assert len(names) == 3
    left = fetch("postgres", "SELECT datname FROM pg_database WHERE datname = ANY($1)", names)
    assert [row["datname"] for row in left] == []
