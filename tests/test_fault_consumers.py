"""Consumers that misbehave, and a shutdown with everything open: real ``python run.py``.

The stages are ILPS stub services in this process, so tasks take as long as the
test says. Streams are read with httpx; the slow consumers are raw sockets that
send their request and never call recv().
"""

from __future__ import annotations

import logging
import signal
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from store.embedded import start_embedded
from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.conftest import free_port
from tests.fakes import assert_valid_history
from tests.fault_helpers import (
    IlpsStubs,
    embedded_socket_dir,
    ilps_stubs,
    read_journal,
    service_env,
    upload_tagged,
)
from tests.process_helpers import ServiceProcess, stop_leftovers
from tests.service_helpers import auth, iter_sse

log = logging.getLogger(__name__)
pytestmark = pytest.mark.anyio


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_leftovers(tmp_path)


@contextmanager
def stub_service(data_dir: Path, stubs: IlpsStubs, **env: str) -> Iterator[ServiceProcess]:
    start_embedded(data_dir / ".data", stop_at_exit=False)  # the test reads the journal too
    service = ServiceProcess(data_dir, free_port(), service_env(**stubs.env(), **env))
    service.start(ready_within=60)
    try:
        yield service
    finally:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)


def journal_of(data_dir: Path) -> dict[str, Any]:
    return {"host": embedded_socket_dir(data_dir / ".data"), "user": "postgres"}


async def create_tasks(client: httpx.AsyncClient, user: uuid.UUID, count: int) -> list[str]:
    return [await upload_tagged(client, user) for _ in range(count)]


def never_reading(port: int, user: uuid.UUID, task_id: str, last_event_id: int) -> socket.socket:
    """A client that asks for a stream and never reads a byte of it (a small window, too)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    token = auth(user)["Authorization"]
    sock.sendall(
        f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {token}\r\nLast-Event-ID: {last_event_id}\r\n\r\n".encode()
    )
    return sock


@dataclass
class Reader:
    """A well-behaved stream client: every event with the moment it arrived."""

    task_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    opened: anyio.Event = field(default_factory=anyio.Event)
    #: When the stream's headers arrived: events written after it were sent live.
    opened_at: float = 0.0
    transcribing: anyio.Event = field(default_factory=anyio.Event)
    ended_cleanly: bool = False

    async def run(self, client: httpx.AsyncClient, user: uuid.UUID, last_event_id: int = 0) -> None:
        headers = {**auth(user), "Last-Event-ID": str(last_event_id)}
        try:
            async with client.stream(
                "GET", f"/tasks/{self.task_id}/events", headers=headers
            ) as response:
                assert response.status_code == 200
                self.opened_at = time.time()
                self.opened.set()
                async for event in iter_sse(response):
                    if event.event == "position":
                        continue  # a queued task's place: not journalled
                    self.arrived.append(time.time())
                    self.events.append(event.data)
                    if event.data["status"] == "transcribing":
                        self.transcribing.set()
            self.ended_cleanly = True
        except httpx.RemoteProtocolError:
            self.ended_cleanly = False


def _latency(reader: Reader) -> list[float]:
    """Persisted-to-received delay of each event the reader got live (not replayed)."""
    delays = []
    for event, at in zip(reader.events, reader.arrived, strict=True):
        written = datetime.fromisoformat(event["created_at"]).timestamp()
        if written > reader.opened_at:
            delays.append(at - written)
    return delays


def _check_journal(
    tasks: dict[uuid.UUID, Any], journal: dict[uuid.UUID, Any], ids: list[str]
) -> None:
    for task_id in map(uuid.UUID, ids):
        history = journal[task_id]
        assert_valid_history(history)
        terminal = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(terminal) == 1
        assert tasks[task_id].status == Status.COMPLETED, tasks[task_id].failure_reason


@pytest.mark.timeout(120)
async def test_a_consumer_that_never_reads(data_dir: Path) -> None:
    """Slow consumers hold neither the actor nor the other streams back, cost bounded
    memory, and resume from Last-Event-ID with exactly the events they missed.

    (An actor's subscriber buffer drops a reader that falls 256 events behind, but only
    once the server's writes block: on loopback, even with a 4 KiB receive window, the
    socket buffers take about 2.8 MB, some 11,000 events, before the transport pauses,
    and a task makes about ten. So here a never-reading client costs its connection and
    nothing else; tests/test_fanout.py covers the drop itself.)
    """
    user = uuid.uuid4()
    # Transcribing takes 3 s: every stream is open before the tasks' last events.
    with (
        ExitStack() as sockets,
        ilps_stubs(transcribe_delay=3.0) as stubs,
        stub_service(data_dir, stubs, MANAGER_CAPACITY="64") as service,
    ):
        assert service.process is not None
        server = psutil.Process(service.process.pid)
        async with httpx.AsyncClient(
            base_url=service.url, timeout=30, limits=httpx.Limits(max_connections=200)
        ) as client:
            await create_tasks(client, user, 5)  # warm up: pools, imports, first allocations
            baseline = server.memory_info().rss
            ids = await create_tasks(client, user, 40)
            hot = ids[0]
            slow = sockets.enter_context(never_reading(service.port, user, hot, last_event_id=1))
            # Many more, on every task: a client that opens streams and never reads them.
            hostile = [
                sockets.enter_context(never_reading(service.port, user, t, 0))
                for t in ids
                for _ in range(10)
            ]
            readers = [Reader(t) for t in ids]
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for reader in readers:
                        group.start_soon(reader.run, client, user)
            grown = server.memory_info().rss - baseline

            tasks, journal = await read_journal(journal_of(data_dir))
            _check_journal(tasks, journal, ids)
            latencies: list[float] = []
            for reader in readers:
                history = journal[uuid.UUID(reader.task_id)]
                assert [e["seq"] for e in reader.events] == [e.seq for e in history]
                latencies += _latency(reader)
            # The hot task's actor broadcast to the never-reading client and to a reader:
            # the reader got each event as fast as everyone else's.
            hot_latency = max(_latency(readers[0]))
            p99 = statistics.quantiles(latencies, n=100)[98]
            log.warning(
                "%d live events: latency p99 %.1f ms, hot task max %.1f ms; RSS growth with"
                " %d never-reading streams: %d KiB",
                len(latencies),
                p99 * 1000,
                hot_latency * 1000,
                len(hostile) + 1,
                grown >> 10,
            )
            assert len(latencies) >= len(readers) * 2
            assert p99 < 0.25
            assert hot_latency < 0.25
            assert grown < 64 * 1024 * 1024  # bounded: well under 160 KiB per stuck stream

            # Later, the slow client resumes where it had got to (seq 1).
            slow.close()
            resumed = Reader(hot)
            with anyio.fail_after(10):
                await resumed.run(client, user, last_event_id=1)
            history = journal[uuid.UUID(hot)]
            assert [(e["seq"], e["status"]) for e in resumed.events] == [
                (e.seq, e.status.value) for e in history[1:]
            ]
        assert service.terminate() == 0


STREAMS_PER_TASK = 10
RUNNING = 50
GRACE = 3.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_sigterm_with_500_open_streams_and_50_running_tasks(data_dir: Path) -> None:
    user = uuid.uuid4()
    with (
        ilps_stubs(transcribe_delay=120) as stubs,
        stub_service(
            data_dir, stubs, MANAGER_CAPACITY="64", MANAGER_SHUTDOWN_GRACE_SECONDS=str(GRACE)
        ) as service,
    ):
        process = service.process
        assert process is not None
        limits = httpx.Limits(max_connections=RUNNING * STREAMS_PER_TASK + 20)
        async with httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as client:
            ids = await create_tasks(client, user, RUNNING)
            readers = [Reader(t) for t in ids for _ in range(STREAMS_PER_TASK)]
            with anyio.fail_after(90):
                async with anyio.create_task_group() as group:
                    for reader in readers:
                        group.start_soon(reader.run, client, user)
                    for reader in readers:
                        await reader.opened.wait()
                        await reader.transcribing.wait()  # every task is in its engine call
                    assert len(stubs.calls) >= 2 * RUNNING
                    began = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    # The engine calls last 120 s: it exits by the grace period, or never.
                    with anyio.fail_after(GRACE + 1.0):
                        code = await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
                    took = time.monotonic() - began
            log.warning(
                "SIGTERM to exit, %d streams, %d tasks: %.2f s", len(readers), RUNNING, took
            )
            assert code == 0
            assert all(r.ended_cleanly for r in readers), "a stream was cut, not ended"
            assert all(r.events[-1]["status"] == "transcribing" for r in readers)

            # Next start: every task resumes in place and completes.
            stubs.transcribe_delay = 0.05
            service.start(ready_within=60)
            resumed = [Reader(t) for t in ids]
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for first, reader in zip(readers[::STREAMS_PER_TASK], resumed, strict=True):
                        group.start_soon(reader.run, client, user, first.events[-1]["seq"])
        assert service.terminate() == 0

    tasks, journal = await read_journal(journal_of(data_dir))
    _check_journal(tasks, journal, ids)
    for first, reader in zip(readers[::STREAMS_PER_TASK], resumed, strict=True):
        history = journal[uuid.UUID(reader.task_id)]
        seen = [e["seq"] for e in first.events] + [e["seq"] for e in reader.events]
        assert seen == [e.seq for e in history]  # resumed through Last-Event-ID, no gap
        statuses = [e.status for e in history if e.type is EventType.STATUS]
        assert statuses.count(Status.TRANSCRIBING) == 1  # resumed in place, not entered twice
