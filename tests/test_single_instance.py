"""One instance per database: a second ``run.py`` on the same PostgreSQL refuses to start.

Two real processes on one database of the machine's PostgreSQL (127.0.0.1:5432).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest
from sqlalchemy import URL

from store.database import connect_arguments
from store.embedded import socket_url
from store.instance_lock import LOCK_KEY, AnotherInstanceRunning, describe, hold_instance_lock
from tests.conftest import MACHINE_HOST, MACHINE_PORT, free_port, machine_pg_available
from tests.process_helpers import ROOT, ServiceProcess, clean_env

pytestmark = pytest.mark.skipif(
    not machine_pg_available(), reason=f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}"
)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(
        host=MACHINE_HOST, port=MACHINE_PORT, user="postgres", database="postgres"
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _lock_holders(database: str) -> int:
    connection = await asyncpg.connect(
        host=MACHINE_HOST, port=MACHINE_PORT, user="postgres", database=database
    )
    try:
        held: int = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            LOCK_KEY,
        )
        return held
    finally:
        await connection.close()


@pytest.fixture
def database() -> Iterator[str]:
    """An empty database of its own on the machine's server; run.py migrates it."""
    name = f"stm_test_{uuid.uuid4().hex[:12]}"
    anyio.run(_admin, f'CREATE DATABASE "{name}"')
    yield name
    anyio.run(_admin, f'DROP DATABASE "{name}" WITH (FORCE)')


def _env(database: str) -> dict[str, str]:
    return clean_env(
        MANAGER_DB_POSTGRES_HOST=MACHINE_HOST,
        MANAGER_DB_POSTGRES_PORT=str(MACHINE_PORT),
        MANAGER_DB_POSTGRES_USER="postgres",
        MANAGER_DB_POSTGRES_PASSWORD="",
        MANAGER_DB_POSTGRES_NAME=database,
        MANAGER_AUTH_JWT_SECRET="s" * 64,
    )


@pytest.fixture
def first(tmp_path: Path, database: str) -> Iterator[ServiceProcess]:
    cwd = tmp_path / "first"
    cwd.mkdir()
    process = ServiceProcess(cwd, free_port(), _env(database))
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)


def test_a_second_instance_on_the_same_database_refuses_in_one_line(
    first: ServiceProcess, tmp_path: Path, database: str
) -> None:
    first.start()
    second = subprocess.run(
        [sys.executable, str(ROOT / "run.py")],
        cwd=tmp_path,
        env={**_env(database), "MANAGER_HTTP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert second.stdout == ""  # no banner: it never served
    assert second.stderr.strip().splitlines() == [
        "another instance is running tasks on this database "
        f"(postgres://postgres@{MACHINE_HOST}:{MACHINE_PORT}/{database}); stop it first"
    ]
    assert first.process is not None
    assert first.process.poll() is None  # the first one runs on
    assert first.terminate() == 0


def test_kill_9_frees_the_database_for_the_next_instance(
    first: ServiceProcess, tmp_path: Path, database: str
) -> None:
    first.start()
    assert anyio.run(_lock_holders, database) == 1
    first.kill9()
    # The server ends the dead process's session, and its lock, as soon as it notices.
    deadline = time.monotonic() + 10
    while anyio.run(_lock_holders, database) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert anyio.run(_lock_holders, database) == 0
    first.start()  # the same data, a new process
    assert anyio.run(_lock_holders, database) == 1
    assert first.terminate() == 0
    assert anyio.run(_lock_holders, database) == 0


def test_the_refusal_names_a_socket_database_as_libpq_does() -> None:
    url = socket_url(Path("/srv/stm/.data/postgres"), "postgres")
    assert describe(url) == "postgres://postgres@/postgres?host=/srv/stm/.data/postgres"


def _url(database: str) -> URL:
    return URL.create(
        "postgresql+asyncpg",
        username="postgres",
        host=MACHINE_HOST,
        port=MACHINE_PORT,
        database=database,
    )


async def _waiting_for_the_lock(database: str) -> int:
    connection = await asyncpg.connect(**connect_arguments(_url(database)))
    try:
        waiting: int = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        return waiting
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_a_holder_that_lets_go_within_the_grace_is_waited_for(database: str) -> None:
    holder = await asyncpg.connect(**connect_arguments(_url(database)))
    taken = anyio.Event()

    async def take() -> None:
        async with hold_instance_lock(_url(database), grace=60):
            taken.set()

    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        async with anyio.create_task_group() as group:
            group.start_soon(take)
            for _ in range(200):  # the server's own view: the taker waits (10 s at most)
                if await _waiting_for_the_lock(database):
                    break
                await anyio.sleep(0.05)
            else:
                pytest.fail("hold_instance_lock never waited for the lock")
            assert not taken.is_set()
            await holder.close()  # as a killed instance's session ends
            with anyio.fail_after(10):
                await taken.wait()
    finally:
        holder.terminate()


@pytest.mark.anyio
async def test_a_holder_that_stays_is_refused_after_the_grace(database: str) -> None:
    holder = await asyncpg.connect(**connect_arguments(_url(database)))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        with anyio.fail_after(10), pytest.raises(AnotherInstanceRunning):
            async with hold_instance_lock(_url(database), grace=0.1):
                pytest.fail("the lock was taken twice")
    finally:
        await holder.close()
