"""Shared fixtures: real PostgreSQL servers (the machine's and the embedded one), a real service."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import URL

from store.database import connect_arguments
from store.embedded import start_embedded
from store.migrate import upgrade

DATA = Path(__file__).parent / "data"
SECRET = "test-secret-" + "0123456789abcdef" * 5
MACHINE_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
MACHINE_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))


def machine_pg_available() -> bool:
    try:
        with socket.create_connection((MACHINE_HOST, MACHINE_PORT), timeout=1):
            return True
    except OSError:
        return False


def _admin_url(server: str, tmp: Path) -> tuple[URL, dict[str, str]]:
    if server == "machine":
        if not machine_pg_available():
            pytest.skip(f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}")
        url = URL.create(
            "postgresql+asyncpg", username="postgres", host=MACHINE_HOST, port=MACHINE_PORT
        )
        return url, {"host": MACHINE_HOST, "port": str(MACHINE_PORT)}
    url = start_embedded(tmp / "embedded")
    host = url.query["host"]
    assert isinstance(host, str)
    return url, {"host": host}


async def _admin(where: dict[str, str], statement: str) -> None:
    connection = await asyncpg.connect(user="postgres", database="postgres", **where)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


#: Every database this session created, and where: dropped when the session ends
#: (the machine's server is shared; nothing of a test run may stay behind on it).
_CREATED: list[tuple[dict[str, str], str]] = []


async def _create_database(where: dict[str, str], name: str, template: str = "") -> None:
    await _admin(
        where, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    )
    _CREATED.append((dict(where), name))


async def _drop_database(where: dict[str, str], name: str) -> None:
    await _admin(where, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if (where, name) in _CREATED:
        _CREATED.remove((where, name))


async def _drop_created() -> None:
    for where, name in list(_CREATED):
        try:
            await _drop_database(where, name)
        except (OSError, asyncpg.PostgresError):
            pass  # an embedded server already stopped: its data dir goes with the run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the session's databases (the session-scoped ones and any a test made)."""
    import anyio

    anyio.run(_drop_created)


def _database_name() -> str:
    return f"stm_test_{uuid.uuid4().hex[:12]}"


def empty_database(server: str, tmp: Path) -> URL:
    """A new database with no tables on ``server`` ("machine" or "embedded")."""
    import anyio

    admin, where = _admin_url(server, tmp)
    name = _database_name()
    anyio.run(_create_database, where, name)
    return admin.set(database=name)


def _fresh_database(server: str, tmp: Path) -> URL:
    url = empty_database(server, tmp)
    upgrade(url)
    return url


async def sql_rows(url: URL, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of one statement, on a connection of its own (outside the pool)."""
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows
    finally:
        await connection.close()


def fresh_database_beside(url: URL) -> URL:
    """A new migrated database on the server of ``url`` (dropped with the session's)."""
    import anyio

    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str):  # the embedded server, reached through its socket
        where = {"host": socket_dir}
    else:
        where = {"host": str(url.host), "port": str(url.port)}
    name = _database_name()
    anyio.run(_create_database, where, name)
    fresh = url.set(database=name)
    upgrade(fresh)
    return fresh


@pytest.fixture(scope="session", params=["machine", "embedded"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> URL:
    """A migrated, empty database on each kind of server (store tests run on both)."""
    return _fresh_database(request.param, tmp_path_factory.mktemp("pg"))


@dataclass(frozen=True)
class _Template:
    url: URL
    where: dict[str, str]


@pytest.fixture(scope="session")
def _service_template(tmp_path_factory: pytest.TempPathFactory) -> _Template:
    """A migrated database that each service test's database is copied from."""
    import anyio

    server = "machine" if machine_pg_available() else "embedded"
    admin, where = _admin_url(server, tmp_path_factory.mktemp("pg"))
    name = _database_name()
    anyio.run(_create_database, where, name)
    url = admin.set(database=name)
    upgrade(url)
    return _Template(url, where)


@pytest.fixture
def service_database_url(_service_template: _Template) -> Iterator[URL]:
    """A migrated, empty database of the service tests' own (the machine's server, else the
    embedded one), dropped after the test.

    One per test: a service recovers every live task it finds, so tasks left by an
    earlier test would take engine slots and stage calls from the next one.
    """
    import anyio

    template = _service_template
    name = _database_name()
    anyio.run(_create_database, template.where, name, template.url.database or "")
    yield template.url.set(database=name)
    anyio.run(_drop_database, template.where, name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def user() -> uuid.UUID:
    return uuid.uuid4()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def speech_clip() -> bytes:
    return (DATA / "two_cities_5s.wav").read_bytes()
