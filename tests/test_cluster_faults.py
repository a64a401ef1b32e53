"""Faults between an instance and its database, made by a TCP proxy in the test: a
reply lost after the server committed, a partitioned connection. Real processes, a
real PostgreSQL (the machine's), the ILPS stage stubs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Thread

import httpx
import pytest

from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL
from tests.cluster_helpers import (
    Cluster,
    Frame,
    fetch,
    journal_of,
    read_stream,
    shared_database,
    submit,
    wait_until,
)
from tests.conftest import MACHINE_HOST, MACHINE_PORT, machine_pg_available
from tests.fakes import assert_valid_history
from tests.fault_helpers import IlpsStubs, ilps_stubs
from tests.fault_proxy import FaultProxy, fault_proxy
from tests.service_helpers import auth

pytestmark = pytest.mark.skipif(
    not machine_pg_available(), reason=f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}"
)

ENDED = {s.value for s in TERMINAL}
#: The application_name of the service's pool connections (its writes go there).
POOL = "service-task-manager"


def bound(text: str) -> bytes:
    """``text`` as a bound parameter of a request (length first): the status a write
    sets, never a literal in a statement's SQL."""
    return len(text).to_bytes(4, "big") + text.encode()


@pytest.fixture
def database() -> Iterator[str]:
    with shared_database() as name:
        yield name


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with fault_proxy(MACHINE_HOST, MACHINE_PORT) as running:
        yield running


@contextmanager
def behind(
    proxy: FaultProxy, database: str, root: Path, stubs: IlpsStubs, count: int = 1, **env: str
) -> Iterator[Cluster]:
    """``count`` instances whose every connection to the database goes through ``proxy``."""
    settings = {
        "MANAGER_DB_POSTGRES_HOST": "127.0.0.1",
        "MANAGER_DB_POSTGRES_PORT": str(proxy.port),
    }
    cluster = Cluster(database, root, stubs, count=count, env={**settings, **env})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _status(url: str, task_id: str, headers: dict[str, str]) -> str:
    status: str = httpx.get(f"{url}/tasks/{task_id}", headers=headers, timeout=10).json()["status"]
    return status


def _ends(url: str, task_id: str, headers: dict[str, str], within: float) -> str:
    return str(
        wait_until(
            lambda: (s := _status(url, task_id, headers)) in ENDED and s,
            within,
            f"task {task_id} ended",
        )
    )


def _one_terminal_each(database: str) -> None:
    _, journal = journal_of(database)
    for history in journal.values():
        assert_valid_history(history)
        ends = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(ends) == 1, history


@pytest.mark.parametrize("status", ["evaluating", "completed"])
def test_a_reply_lost_after_the_commit_does_not_stop_the_task(
    database: str, proxy: FaultProxy, tmp_path: Path, status: str
) -> None:
    """One instance, default settings (a 10 s lease): the answer to the write that
    enters ``status`` is lost after the server committed it. The actor's second try
    is refused by the seq guard, not by the fence: the task carries on from the
    journal and completes, and nothing of it stays live."""
    with (
        ilps_stubs() as stubs,
        behind(proxy, database, tmp_path, stubs, MANAGER_LEASE_SECONDS="10") as cluster,
    ):
        (a,) = cluster.instances
        headers = auth(uuid.uuid4())
        proxy.lose_reply(bound(status), name=POOL)
        task_id = submit(a.url, headers)
        assert _ends(a.url, task_id, headers, within=20) == "completed"
        assert proxy.stats.lost_replies == 1
        wait_until(lambda: a.readyz()["cluster"]["tasks_owned"] == 0, 10, "A let it go")
    _one_terminal_each(database)
    assert fetch(database, "SELECT count(*) AS n FROM live_tasks")[0]["n"] == 0


def _stream_in_thread(
    url: str, task_id: str, headers: dict[str, str]
) -> tuple[Thread, list[Frame]]:
    """Read the task's stream on a thread of its own (a deaf stream would block the test)."""
    frames: list[Frame] = []

    def read() -> None:
        with contextlib.suppress(httpx.TransportError):
            frames.extend(read_stream(url, task_id, headers))

    reader = Thread(target=read, daemon=True)
    reader.start()
    return reader, frames


def test_a_partitioned_listen_connection_is_noticed_and_streams_still_end(
    database: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A's LISTEN connection is blackholed (open, silent), as a partition leaves it:
    its heartbeat finds it deaf, /readyz stops saying "listen", and A catches up by
    polling while it reconnects: a stream on A of a task B runs gets its terminal
    event, and a cancel recorded for A (sent to B) is carried out."""
    with (
        ilps_stubs(transcribe_delay=3.0) as stubs,
        behind(proxy, database, tmp_path, stubs, count=2) as cluster,
    ):
        a, b = cluster.instances
        headers = auth(uuid.uuid4())
        wait_until(lambda: a.readyz()["cluster"]["events"] == "listen", 20, "A listens")
        on_b = submit(b.url, headers)
        reader, frames = _stream_in_thread(a.url, on_b, headers)
        wait_until(lambda: frames, 10, "A's stream has begun")
        proxy.blackhole("stm listener A")
        wait_until(lambda: a.readyz()["cluster"]["events"] != "listen", 10, "A says so")
        reader.join(30)
        assert not reader.is_alive(), f"A's stream of B's task did not end: {frames}"
        assert frames[-1].data["status"] == "completed"
        on_a = submit(a.url, headers)  # A runs it; A is still cut off from its listener
        wait_until(lambda: _status(a.url, on_a, headers) == "transcribing", 10, "A runs it")
        cancelled = httpx.post(f"{b.url}/tasks/{on_a}/cancel", headers=headers, timeout=60)
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        proxy.heal()
        wait_until(lambda: a.readyz()["cluster"]["events"] == "listen", 30, "A listens again")
    _one_terminal_each(database)
