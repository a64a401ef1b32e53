"""Engine faults seen from the service: ``python run.py`` with the embedded engine.

The recogniser runs in anyio worker processes (``python -m anyio.to_process``),
children of the service. The tests kill one with SIGKILL in the middle of a task,
freeze one with SIGSTOP (a hang) past the stage timeout, and make the engine
raise (its models missing); each fault is retried with a ``retry`` event that
says why, and a fault that persists fails the task with a reason. When the
service stops, none of its worker processes is left behind.

A task is followed through its stream; the recogniser works on 5-second pieces
and reports progress after each, so "after the first progress event" is a
moment when a worker is busy with the second piece.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from speech.whisper_model import bundled_model
from tests.conftest import DATA, free_port
from tests.fault_helpers import service_env, worker_processes
from tests.process_helpers import ServiceProcess, stop_leftovers
from tests.service_helpers import auth, repeat_wav

pytestmark = pytest.mark.slow

USER = uuid.uuid4()
#: Every worker process a test signalled: none may outlive the service.
SIGNALLED: list[psutil.Process] = []


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_leftovers(tmp_path)


@pytest.fixture(scope="module")
def ten_seconds() -> bytes:
    return repeat_wav((DATA / "two_cities_5s.wav").read_bytes(), 2)


@contextmanager
def engine_service(data_dir: Path, **env: str) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    """The service with one engine worker and one slot; asserts it leaves no worker behind
    (the worker alive at the end, and every one the test signalled)."""
    settings = {
        "MANAGER_ENGINE_WORKERS": "1",
        "MANAGER_CAPACITY": "1",
        "MANAGER_STAGE_ATTEMPTS": "2",
        "MANAGER_SEGMENT_SECONDS": "5",
        **env,
    }
    SIGNALLED.clear()
    service = ServiceProcess(data_dir, free_port(), service_env(**settings))
    service.start(ready_within=60)
    assert service.process is not None
    try:
        with httpx.Client(base_url=service.url, headers=auth(USER), timeout=60) as client:
            yield service, client
        workers = worker_processes(service.process.pid) + SIGNALLED
        assert service.terminate() == 0
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], f"orphan worker processes: {alive}"
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)


def create(client: httpx.Client, audio: bytes) -> str:
    answer = client.post("/tasks", files={"file": ("a.wav", audio, "audio/wav")})
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["id"]
    return task_id


def follow(client: httpx.Client, task_id: str) -> Iterator[dict[str, Any]]:
    """Every event of the task's stream, until it ends after the terminal one."""
    with client.stream("GET", f"/tasks/{task_id}/events") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def signal_workers(service: ServiceProcess, signum: signal.Signals) -> list[psutil.Process]:
    assert service.process is not None
    workers = worker_processes(service.process.pid)
    assert workers, "no engine worker to signal"
    for worker in workers:
        os.kill(worker.pid, signum)
    SIGNALLED.extend(workers)
    return workers


def failure_reason(client: httpx.Client, task_id: str) -> str:
    reason: str = client.get(f"/tasks/{task_id}").json()["failure_reason"]
    return reason


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_task(data_dir: Path, ten_seconds: bytes) -> None:
    with engine_service(data_dir) as (service, client):
        # Killed on every attempt: failed, with the reason.
        task = create(client, ten_seconds)
        kills = 0
        armed = True
        for event in follow(client, task):
            if event["type"] == "progress" and armed:
                signal_workers(service, signal.SIGKILL)
                kills += 1
                armed = False
            elif event["type"] == "retry":
                armed = True
            last = event
        assert (kills, last["status"]) == (2, "failed")
        expected = "the recogniser worker process died (gave up after 2 attempts)"
        assert last["payload"]["reason"] == failure_reason(client, task) == expected

        # Killed once: retried, and the second attempt completes.
        task = create(client, ten_seconds)
        killed: list[psutil.Process] = []
        events = []
        for event in follow(client, task):
            events.append(event)
            if event["type"] == "progress" and not killed:
                killed = signal_workers(service, signal.SIGKILL)
        retries = [e["payload"] for e in events if e["type"] == "retry"]
        assert [(r["stage"], r["attempt"], r["error"]) for r in retries] == [
            ("transcribing", 1, "the recogniser worker process died")
        ]
        assert events[-1]["status"] == "completed"
        assert client.get(f"/tasks/{task}").json()["transcript"]
        assert not any(p.is_running() for p in killed)


def freeze_the_next_worker(service: ServiceProcess, known: list[psutil.Process]) -> None:
    """SIGSTOP the worker the next attempt starts, once it is at work: past its start-up
    (anyio does not kill a worker cancelled while it starts, see the report) and into
    loading the recogniser, about a second of CPU before it could be done. Polled:
    another process sends no event. If the attempt times out first, there is none."""
    assert service.process is not None
    deadline = time.monotonic() + 20
    started = False
    while time.monotonic() < deadline:
        fresh = [w for w in worker_processes(service.process.pid) if w not in known]
        if started and not fresh:
            return  # it was killed at the timeout before it got that far
        started = started or bool(fresh)
        try:
            busy = [w for w in fresh if w.cpu_times().user > 0.8]
        except psutil.NoSuchProcess:
            continue
        if busy:
            known += signal_workers(service, signal.SIGSTOP)
            return
        time.sleep(0.01)
    raise AssertionError("the retry started no worker process")


@pytest.mark.timeout(180)
def test_a_hung_worker_past_the_stage_timeout(data_dir: Path, ten_seconds: bytes) -> None:
    """A worker frozen with SIGSTOP in each attempt: the stage times out, the frozen
    worker is killed (not left hanging), the stage is retried, then the task fails."""
    timeout = "3"
    with engine_service(
        data_dir, MANAGER_STAGE_TIMEOUT_SECONDS=timeout, MANAGER_SEGMENT_SECONDS="30"
    ) as (service, client):
        task = create(client, ten_seconds)
        frozen: list[psutil.Process] = []
        events = []
        for event in follow(client, task):
            events.append(event)
            if event["status"] == "transcribing" and event["type"] == "status":
                frozen += signal_workers(service, signal.SIGSTOP)  # it hangs, holding its slot
            elif event["type"] == "retry":
                freeze_the_next_worker(service, frozen)
        retries = [e["payload"] for e in events if e["type"] == "retry"]
        assert [(r["stage"], r["error"]) for r in retries] == [
            ("transcribing", f"transcribing took longer than {timeout} s")
        ]
        assert events[-1]["status"] == "failed"
        expected = f"transcribing took longer than {timeout} s (gave up after 2 attempts)"
        assert failure_reason(client, task) == expected
        # Each frozen worker was killed when its stage timed out, not left hanging.
        gone, alive = psutil.wait_procs(frozen, timeout=5)
        assert alive == []


@pytest.mark.timeout(180)
def test_an_engine_exception(data_dir: Path, ten_seconds: bytes, tmp_path: Path) -> None:
    # The Whisper model is broken: its directory reads (so the service starts) but its
    # weights do not load, and CTranslate2 raises in the worker process.
    broken = tmp_path / "broken-model"
    broken.mkdir()
    bundled = Path(bundled_model())
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        (broken / name).write_bytes((bundled / name).read_bytes())
    (broken / "model.bin").write_bytes(b"not a model")
    with engine_service(data_dir, MANAGER_WHISPER_MODEL=str(broken)) as (service, client):
        task = create(client, ten_seconds)
        events = list(follow(client, task))
        retries = [e["payload"] for e in events if e["type"] == "retry"]
        error = "the recogniser failed unexpectedly"  # the details are in the log only
        assert [(r["stage"], r["attempt"], r["error"]) for r in retries] == [
            ("transcribing", 1, error)
        ]
        assert events[-1]["status"] == "failed"
        assert failure_reason(client, task) == f"{error} (gave up after 2 attempts)"
        # The service is unharmed: the worker survived its exception and still decodes.
        assert client.get("/readyz").status_code == 200


def _raises(error: Exception) -> None:
    raise error


@pytest.mark.anyio
async def test_what_an_engine_raises_in_its_worker_becomes_a_stage_error() -> None:
    """The stage-level rule behind test_an_engine_exception: the engine's own verdicts
    pass through; anything else it raises is transient, with a reason that holds no
    internals (its type and message go to the log)."""
    from anyio import CapacityLimiter

    from speech.base import PermanentStageError, TransientStageError
    from speech.workers import run_in_worker

    limiter = CapacityLimiter(1)
    with pytest.raises(TransientStageError) as transient:
        await run_in_worker(_raises, ValueError("bad input"), limiter=limiter, what="probe")
    assert transient.value.reason == "the probe failed unexpectedly"
    with pytest.raises(PermanentStageError, match="not audio"):
        await run_in_worker(_raises, PermanentStageError("not audio"), limiter=limiter, what="x")
