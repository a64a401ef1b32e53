"""kill -9 at random moments: nothing is lost, nothing is finished twice.

Twenty rounds of: start ``python run.py``, submit up to 50 tasks, kill -9 at a
random moment (during the uploads, a pipeline or the recovery of the previous
rounds' tasks), and start again. The three stages are ILPS stub services (real
HTTP servers in this process): the test is about the manager, not about speech,
and the stubs count every stage call per task, which the embedded engine could not.

What "processed to completion twice" means here: a task's completion is recorded
at most once (one terminal event, the last of its journal), and no stage of a
task is called again once its completion is recorded. A crash in the middle of
a stage may run that stage again on the next start (the work is idempotent and
its result is only recorded with the transition), so a task's feedback calls are
at most one per process life it was live in: one, plus the kills during its life.

The seed is printed; ``FAULT_SEED=<seed>`` replays the same kill moments.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from store.embedded import start_embedded
from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.conftest import free_port
from tests.fakes import assert_valid_history
from tests.fault_helpers import (
    Submitter,
    embedded_socket_dir,
    ilps_stubs,
    read_journal,
    seed_from_env,
    service_env,
)
from tests.process_helpers import ServiceProcess, stop_leftovers
from tests.service_helpers import auth

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow

ROUNDS = 20
PER_ROUND = 50
#: The kill comes this many seconds after the service is ready, uniformly at random.
LATEST_KILL = 1.5


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_leftovers(tmp_path)


def _follow_to_the_end(client: httpx.Client, task_id: uuid.UUID) -> None:
    """Read a task's stream until it ends (after the terminal event)."""
    with client.stream("GET", f"/tasks/{task_id}/events") as response:
        assert response.status_code in (200, 204)
        for _ in response.iter_lines():
            pass


@pytest.mark.timeout(400)
def test_kill_9_at_random_moments(data_dir: Path) -> None:
    seed = seed_from_env()
    log.warning("crash suite seed: %d (replay with FAULT_SEED=%d)", seed, seed)
    rng = random.Random(seed)
    # The test starts the embedded server itself, so it can read the journal between runs.
    start_embedded(data_dir / ".data", stop_at_exit=False)
    connect = {"host": embedded_socket_dir(data_dir / ".data"), "user": "postgres"}
    headers = auth(uuid.uuid4())
    accepted: list[uuid.UUID] = []
    kills: list[float] = []
    with ilps_stubs(transcribe_delay=0.05) as stubs:
        service = ServiceProcess(
            data_dir, free_port(), service_env(MANAGER_CAPACITY="16", **stubs.env())
        )
        try:
            for round_ in range(ROUNDS):
                service.start()
                submitter = Submitter(service.url, headers, PER_ROUND)
                submitter.start()
                delay = rng.uniform(0, LATEST_KILL)
                time.sleep(delay)
                service.kill9()
                kills.append(time.time())
                submitter.stop.set()
                submitter.join(30)
                assert not submitter.refused, submitter.refused
                accepted += submitter.accepted
                log.warning("round %d: killed after %.2f s", round_, delay)
            service.start()
            live, _ = anyio.run(read_journal, connect)
            with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
                for task_id, view in live.items():
                    if view.status not in TERMINAL:
                        _follow_to_the_end(client, task_id)
            assert service.terminate() == 0
        finally:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(10)
        calls = list(stubs.calls)

    tasks, journal = anyio.run(read_journal, connect)
    by_text = {view.text_id: view for view in tasks.values()}
    assert set(accepted) <= set(by_text), "a task whose upload was answered 201 is missing"
    assert len(tasks) >= len(accepted) > 0
    log.warning("%d tasks over %d kills; %d stage calls", len(tasks), ROUNDS, len(calls))
    for task_id, view in tasks.items():
        history = journal[task_id]
        assert_valid_history(history)  # seq 1..n without gaps, allowed transitions only
        assert view.last_seq == len(history)
        terminal = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(terminal) == 1, history
        assert history[-1] is terminal[0]
        assert view.status == Status.COMPLETED, view.failure_reason
        assert view.text_id is not None
        done = terminal[0].created_at.timestamp()
        tag = view.text_id.bytes[:8].hex()
        mine = [c for c in calls if c.tag == tag]
        late = [c for c in mine if c.at > done]
        assert not late, f"task {task_id} called {late} after its completion was recorded"
        lives = 1 + sum(1 for k in kills if view.created_at.timestamp() <= k <= done)
        feedback = sum(1 for c in mine if c.stage == "feedback")
        assert 1 <= feedback <= lives, (task_id, feedback, lives)
