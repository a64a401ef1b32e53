"""For the cluster suites: several ``run.py`` processes on one database of the machine's
PostgreSQL, the ILPS stage stubs they share, and the journal and ownership as rows."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx

from supervisor.events import Event
from tests.conftest import MACHINE_HOST, MACHINE_PORT, free_port
from tests.fault_helpers import IlpsStubs, TaskRowView, read_journal, service_env, tagged_clip
from tests.process_helpers import ServiceProcess


def connect_to(database: str) -> dict[str, Any]:
    return {"host": MACHINE_HOST, "port": MACHINE_PORT, "user": "postgres", "database": database}


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(**connect_to("postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def shared_database() -> Iterator[str]:
    """An empty database of its own on the machine's server; the first instance migrates it."""
    name = f"stm_cluster_{uuid.uuid4().hex[:12]}"
    anyio.run(_admin, f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        anyio.run(_admin, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(**connect_to(database))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows
    finally:
        await connection.close()


def fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return anyio.run(_fetch, database, sql, *args)


def terminate_backends(database: str, application_name: str) -> list[bool]:
    """End the sessions named ``application_name`` in ``database`` only: the server is
    shared, and other runs' instances carry the same names in their own databases."""
    rows = fetch(
        database,
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
        " WHERE application_name = $1 AND datname = current_database()",
        application_name,
    )
    return [row["done"] for row in rows]


def journal_of(database: str) -> tuple[dict[uuid.UUID, TaskRowView], dict[uuid.UUID, list[Event]]]:
    """Every task row and its events, straight from the database."""
    return anyio.run(read_journal, connect_to(database))


def owner_of(database: str, task_id: str) -> uuid.UUID | None:
    rows = fetch(database, "SELECT owner FROM live_tasks WHERE task_id = $1", uuid.UUID(task_id))
    return rows[0]["owner"] if rows else None


def wait_until(check: Any, within: float, what: str) -> Any:
    """Poll another process's state (it sends this test no event) until ``check()`` is truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {within} s: {what}")


@dataclass
class Instance(ServiceProcess):
    name: str = ""

    def instance_id(self) -> uuid.UUID:
        answer = httpx.get(f"{self.url}/readyz", timeout=5).json()
        return uuid.UUID(answer["cluster"]["instance"])

    def readyz(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()
        return body

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@dataclass
class Cluster:
    """``count`` instances of the service on ``database``, each in a directory of its own."""

    database: str
    root: Path
    stubs: IlpsStubs
    count: int = 3
    env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        for index in range(self.count):
            cwd = self.root / f"instance-{index}"
            cwd.mkdir(parents=True, exist_ok=True)
            name = "ABC"[index] if index < 3 else f"I{index}"
            settings = {
                "MANAGER_DB_POSTGRES_HOST": MACHINE_HOST,
                "MANAGER_DB_POSTGRES_PORT": str(MACHINE_PORT),
                "MANAGER_DB_POSTGRES_USER": "postgres",
                "MANAGER_DB_POSTGRES_PASSWORD": "",
                "MANAGER_DB_POSTGRES_NAME": self.database,
                "MANAGER_INSTANCE_NAME": name,
                "MANAGER_LEASE_SECONDS": "2",
                **self.stubs.env(),
                **self.env,
            }
            env = service_env(**settings)
            self.instances.append(Instance(cwd, free_port(), env, name=name))

    def start(self) -> None:
        for instance in self.instances:
            instance.start(ready_within=60)

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()

    def __getitem__(self, index: int) -> Instance:
        return self.instances[index]


def submit(url: str, headers: dict[str, str], text_id: uuid.UUID | None = None) -> str:
    """Create a task whose clip carries its text_id (the stubs count calls by it)."""
    text_id = text_id or uuid.uuid4()
    answer = httpx.post(
        f"{url}/tasks",
        headers=headers,
        files={"file": ("a.wav", tagged_clip(text_id), "audio/wav")},
        data={"text_id": str(text_id)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["id"]
    return task_id


@dataclass(frozen=True)
class Frame:
    id: int | None
    event: str
    data: dict[str, Any]


def read_stream(
    url: str, task_id: str, headers: dict[str, str], last_event_id: int | None = None
) -> Iterator[Frame]:
    """The frames of a task's stream, as they arrive, until it ends."""
    extra = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with httpx.stream(
        "GET", f"{url}/tasks/{task_id}/events", headers={**headers, **extra}, timeout=60
    ) as response:
        if response.status_code == 204:
            return
        assert response.status_code == 200, response.read()
        frame: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in frame:
                    yield Frame(
                        int(frame["id"]) if "id" in frame else None,
                        frame.get("event", "message"),
                        json.loads(frame["data"]),
                    )
                frame = {}
                continue
            key, _, value = line.partition(":")
            frame[key] = value.lstrip(" ")


def follow_to_the_end(
    urls: list[str], task_id: str, headers: dict[str, str], within: float = 60
) -> list[Frame]:
    """Every frame of the task's stream, reconnecting by Last-Event-ID (to the next
    instance) when a connection ends before the current terminal event (the server
    ends a stream right after it, so earlier attempts' terminal events pass by)."""
    frames: list[Frame] = []
    last: int | None = None
    deadline = time.monotonic() + within
    turn = 0
    while time.monotonic() < deadline:
        url = urls[turn % len(urls)]
        turn += 1
        try:
            for frame in read_stream(url, task_id, headers, last):
                frames.append(frame)
                last = frame.id if frame.id is not None else last
        except (httpx.TransportError, AssertionError):
            time.sleep(0.05)  # that instance is down: the next one
            continue
        if frames and (_is_end(frames[-1]) or frames[-1].event == "deleted"):
            return frames
        if not frames and last is None:
            time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end within {within} s: {frames}")


def _is_end(frame: Frame) -> bool:
    return frame.event == "status" and frame.data.get("status") in (
        "completed",
        "failed",
        "cancelled",
    )
