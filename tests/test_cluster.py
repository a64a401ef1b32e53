"""Three real instances on one database of the machine's PostgreSQL.

Each task is run by one instance at a time; streams, cancels and deletions work from
any instance; a dead, paused or departing instance's tasks are resumed by the others.
The stages are the ILPS stubs (real HTTP servers in this process), which count every
stage call per task.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.cluster_helpers import (
    Cluster,
    Frame,
    fetch,
    follow_to_the_end,
    journal_of,
    owner_of,
    read_stream,
    shared_database,
    submit,
    terminate_backends,
    wait_until,
)
from tests.conftest import MACHINE_HOST, MACHINE_PORT, machine_pg_available
from tests.fakes import assert_valid_history
from tests.fault_helpers import ilps_stubs, seed_from_env
from tests.ilps_helpers import RawStream, read_whole
from tests.service_helpers import auth

log = logging.getLogger(__name__)

pytestmark = pytest.mark.skipif(
    not machine_pg_available(), reason=f"no PostgreSQL at {MACHINE_HOST}:{MACHINE_PORT}"
)

ENDED = {s.value for s in TERMINAL}


@pytest.fixture
def database() -> Iterator[str]:
    with shared_database() as name:
        yield name


@contextmanager
def _cluster(
    database: str, root: Path, delay: float, count: int = 3, **env: str
) -> Iterator[Cluster]:
    with ilps_stubs(transcribe_delay=delay) as stubs:
        cluster = Cluster(database, root, stubs, count=count, env=env)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
def cluster(database: str, tmp_path: Path) -> Iterator[Cluster]:
    """Three instances; the transcribing stub takes 1 s, so a task is caught mid-stage."""
    with _cluster(
        database, tmp_path, 1.0, MANAGER_CAPACITY="4", MANAGER_ILPS_COMPAT="true"
    ) as running:
        yield running


def _ids(frames: list[Frame]) -> list[int]:
    return [frame.id for frame in frames if frame.id is not None]


def _wait_for_status(
    url: str, task_id: str, headers: dict[str, str], status: str, after: int | None = None
) -> int:
    """Read the stream (after ``after``) until ``status``; the seq it was reached at."""
    for frame in read_stream(url, task_id, headers, after):
        if frame.data.get("status") == status:
            assert frame.id is not None
            return frame.id
    raise AssertionError(f"the stream ended before {status}")


def test_a_stream_on_one_instance_follows_a_task_through_the_death_of_its_owner(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.instances
    headers = auth(uuid.uuid4())
    task_id = submit(b.url, headers)  # B has room: B runs it
    assert owner_of(cluster.database, task_id) == b.instance_id()
    frames: list[Frame] = []
    killed_at = None
    for frame in read_stream(a.url, task_id, headers):
        frames.append(frame)
        if frame.data.get("status") == "transcribing" and killed_at is None:
            b.kill9()  # mid-stage, while A's stream is open
            killed_at = time.monotonic()
        if frame.event == "status" and frame.data.get("status") in ENDED:
            break
    assert killed_at is not None
    assert frames[-1].data["status"] == "completed"
    assert _ids(frames) == list(range(1, len(_ids(frames)) + 1))  # no gap, no duplicate
    tasks, journal = journal_of(cluster.database)
    assert_valid_history(journal[uuid.UUID(task_id)])
    assert [f.id for f in frames] == [e.seq for e in journal[uuid.UUID(task_id)]]


def test_the_legacy_stream_on_one_instance_follows_a_task_run_on_another(
    cluster: Cluster,
) -> None:
    a, b, _ = cluster.instances
    user = uuid.uuid4()
    task_id = submit(b.url, auth(user))

    async def follow() -> RawStream:
        async with httpx.AsyncClient(base_url=a.url, timeout=60) as client:
            return await read_whole(client, user, task_id)

    stream = anyio.run(follow)
    assert stream.statuses[-1] == "completed"  # the ILPS statuses, ended by the final one
    assert stream.seqs == sorted(set(stream.seqs))  # no duplicate, in order


def test_cancel_and_delete_sent_to_instances_that_do_not_run_the_task(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.instances
    headers = auth(uuid.uuid4())
    # Cancel sent to C of a task run on A.
    on_a = submit(a.url, headers)
    _wait_for_status(a.url, on_a, headers, "transcribing")
    answer = httpx.post(f"{c.url}/tasks/{on_a}/cancel", headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "cancelled"
    seen = httpx.get(f"{b.url}/tasks/{on_a}", headers=headers, timeout=10).json()
    assert seen["status"] == "cancelled"
    again = httpx.post(f"{b.url}/tasks/{on_a}/cancel", headers=headers, timeout=30)
    assert again.status_code == 409  # the same answer as on one instance
    # Retry sent to B; the new attempt is cancelled through an instance that does not
    # run it: its history holds the first attempt's end, which is not the answer.
    retried = httpx.post(f"{b.url}/tasks/{on_a}/retry", headers=headers, timeout=30)
    assert retried.status_code == 202, retried.text
    _wait_for_status(b.url, on_a, headers, "transcribing", retried.json()["last_event_id"])
    owner = owner_of(cluster.database, on_a)
    elsewhere = next(i for i in cluster.instances if i.instance_id() != owner)
    answer = httpx.post(f"{elsewhere.url}/tasks/{on_a}/cancel", headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text  # not 409 "already ended"
    assert answer.json()["status"] == "cancelled"
    # Retried again: the new attempt runs to its end.
    retried = httpx.post(f"{b.url}/tasks/{on_a}/retry", headers=headers, timeout=30)
    assert retried.status_code == 202, retried.text
    rerun = follow_to_the_end([a.url], on_a, headers)
    assert rerun[-1].data["status"] == "completed"
    assert rerun[-1].data["seq"] == max(_ids(rerun))
    # Delete sent to B of a task run on C: C's stream says "deleted", C stops it.
    on_c = submit(c.url, headers)
    assert owner_of(cluster.database, on_c) == c.instance_id()
    frames: list[Frame] = []
    for frame in read_stream(c.url, on_c, headers):
        frames.append(frame)
        if frame.data.get("status") == "transcribing":
            gone = httpx.delete(f"{b.url}/tasks/{on_c}", headers=headers, timeout=30)
            assert gone.status_code == 204
    assert frames[-1].event == "deleted"
    assert httpx.get(f"{c.url}/tasks/{on_c}", headers=headers).status_code == 404
    wait_until(lambda: c.readyz()["cluster"]["tasks_owned"] == 0, 10, "C let the task go")
    tasks, _ = journal_of(cluster.database)
    assert uuid.UUID(on_c) not in tasks


def test_a_paused_instance_loses_its_tasks_and_cannot_write_after_waking(
    database: str, tmp_path: Path
) -> None:
    with _cluster(database, tmp_path, 3.0, count=2) as cluster:
        a, b = cluster.instances
        headers = auth(uuid.uuid4())
        task_id = submit(a.url, headers)
        a_id = a.instance_id()
        _wait_for_status(a.url, task_id, headers, "transcribing")  # A's stub call is held
        a.pause()  # past its 2 s lease
        try:
            b_id = b.instance_id()
            wait_until(lambda: owner_of(database, task_id) == b_id, 10, "B took the task over")
            frames = follow_to_the_end([b.url], task_id, headers)
            assert frames[-1].data["status"] == "completed"
            _, journal = journal_of(database)
            before = journal[uuid.UUID(task_id)]
        finally:
            a.resume()
        # A wakes, finds it was presumed dead, stops its actor and joins again.
        wait_until(lambda: a.instance_id() != a_id, 15, "A joined again under a new id")
        _, journal = journal_of(database)
        after = journal[uuid.UUID(task_id)]
        assert after == before  # nothing A wrote after waking landed
        assert_valid_history(after)
        terminal = [e for e in after if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(terminal) == 1
        members = fetch(database, "SELECT count(*) AS n FROM cluster_instances")
        assert members[0]["n"] == 2


def test_the_listen_connection_killed_from_the_database_side(cluster: Cluster) -> None:
    a, b, _ = cluster.instances
    headers = auth(uuid.uuid4())
    task_id = submit(b.url, headers)
    frames: list[Frame] = []
    terminated = False
    for frame in read_stream(a.url, task_id, headers):
        frames.append(frame)
        if frame.data.get("status") == "transcribing" and not terminated:
            assert terminate_backends(cluster.database, "stm listener A") == [True]
            terminated = True
        if frame.event == "status" and frame.data.get("status") in ENDED:
            break
    assert terminated
    assert frames[-1].data["status"] == "completed"
    assert _ids(frames) == list(range(1, len(_ids(frames)) + 1))
    wait_until(lambda: a.readyz()["cluster"]["events"] == "listen", 10, "A listens again")


def test_a_graceful_stop_hands_the_tasks_over_without_waiting_for_the_lease(
    database: str, tmp_path: Path
) -> None:
    # A 60 s lease: only the handover can make this quick.
    with _cluster(database, tmp_path, 2.0, count=2, MANAGER_LEASE_SECONDS="60") as cluster:
        a, b = cluster.instances
        headers = auth(uuid.uuid4())
        task_id = submit(a.url, headers)
        _wait_for_status(a.url, task_id, headers, "transcribing")
        assert a.terminate() == 0
        b_id = b.instance_id()
        wait_until(lambda: owner_of(database, task_id) == b_id, 10, "B took it at once")
        frames = follow_to_the_end([b.url], task_id, headers)
        assert frames[-1].data["status"] == "completed"


def test_a_busy_instance_leaves_its_backlog_to_an_idle_one(database: str, tmp_path: Path) -> None:
    with ilps_stubs(transcribe_delay=1.0) as stubs:
        cluster = Cluster(database, tmp_path, stubs, count=2)
        cluster[0].env["MANAGER_CLAIM_LIMIT"] = "1"
        try:
            cluster.start()
            a, b = cluster.instances
            headers = auth(uuid.uuid4())
            tasks = [submit(a.url, headers) for _ in range(3)]
            b_id = b.instance_id()
            wait_until(lambda: any(owner_of(database, t) == b_id for t in tasks), 10, "B took one")
            for task_id in tasks:
                frames = follow_to_the_end([a.url, b.url], task_id, headers)
                assert frames[-1].data["status"] == "completed"
        finally:
            cluster.stop()


def test_polling_instead_of_listen(database: str, tmp_path: Path) -> None:
    with ilps_stubs(transcribe_delay=0.5) as stubs:
        cluster = Cluster(database, tmp_path, stubs, count=2)
        cluster[0].env.update(MANAGER_CLUSTER_EVENTS="poll", MANAGER_POLL_SECONDS="0.1")
        try:
            cluster.start()
            a, b = cluster.instances
            assert a.readyz()["cluster"]["events"] == "poll"
            assert "polling every" in a.log.read_text()
            headers = auth(uuid.uuid4())
            task_id = submit(b.url, headers)
            frames = follow_to_the_end([a.url], task_id, headers)
            assert frames[-1].data["status"] == "completed"
            assert _ids(frames) == list(range(1, len(_ids(frames)) + 1))
            # A cancel sent to the polling instance, of a task B runs.
            other = submit(b.url, headers)
            _wait_for_status(b.url, other, headers, "transcribing")
            answer = httpx.post(f"{a.url}/tasks/{other}/cancel", headers=headers, timeout=30)
            assert answer.status_code == 202
        finally:
            cluster.stop()


ROUNDS = 20
PER_ROUND = 6
#: The kill comes this long after the round's first upload, uniformly at random.
LATEST_KILL = 1.0


class _Submissions(threading.Thread):
    """Posts tasks to random instances until told to stop; keeps what was accepted."""

    def __init__(self, urls: list[str], headers: dict[str, str], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self._urls = urls
        self._headers = headers
        self._rng = rng
        self.stop = threading.Event()
        self.accepted: list[uuid.UUID] = []

    def run(self) -> None:
        from tests.fault_helpers import tagged_clip

        for _ in range(PER_ROUND):
            if self.stop.is_set():
                return
            url = self._rng.choice(self._urls)
            text_id = uuid.uuid4()
            try:
                answer = httpx.post(
                    f"{url}/tasks",
                    headers=self._headers,
                    files={"file": ("a.wav", tagged_clip(text_id), "audio/wav")},
                    data={"text_id": str(text_id)},
                    timeout=10,
                )
            except httpx.TransportError:  # that instance was just killed
                continue
            if answer.status_code == 201:
                self.accepted.append(text_id)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_of_random_instances_at_random_moments(database: str, tmp_path: Path) -> None:
    seed = seed_from_env()
    log.warning("cluster suite seed: %d (replay with FAULT_SEED=%d)", seed, seed)
    rng = random.Random(seed)
    headers = auth(uuid.uuid4())
    accepted: list[uuid.UUID] = []
    kills: list[float] = []
    with ilps_stubs(transcribe_delay=0.2) as stubs:
        cluster = Cluster(database, tmp_path, stubs, count=3, env={"MANAGER_CAPACITY": "4"})
        try:
            cluster.start()
            urls = [i.url for i in cluster.instances]
            for round_ in range(ROUNDS):
                submissions = _Submissions(urls, headers, rng)
                submissions.start()
                delay = rng.uniform(0, LATEST_KILL)
                time.sleep(delay)
                victim = rng.randrange(3)
                cluster[victim].kill9()
                kills.append(time.time())
                submissions.join(60)
                accepted += submissions.accepted
                cluster[victim].start(ready_within=60)
                log.warning("round %d: killed %s after %.2f s", round_, cluster[victim].name, delay)
            tasks, _ = journal_of(database)
            for task_id, view in tasks.items():
                if view.status not in ENDED:
                    follow_to_the_end(urls, str(task_id), headers, within=120)
        finally:
            cluster.stop()
        calls = list(stubs.calls)

    tasks, journal = journal_of(database)
    by_text = {view.text_id: view for view in tasks.values()}
    assert set(accepted) <= set(by_text), "a task whose upload was answered 201 is missing"
    assert len(accepted) > ROUNDS
    log.warning("%d tasks over %d kills; %d stage calls", len(tasks), ROUNDS, len(calls))
    for task_id, view in tasks.items():
        history = journal[task_id]
        assert_valid_history(history)  # seq 1..n without gaps, one terminal event per run
        terminal = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        assert len(terminal) == 1, history
        assert view.status == Status.COMPLETED, view.failure_reason
        assert view.text_id is not None
        done = terminal[0].created_at.timestamp()
        tag = view.text_id.bytes[:8].hex()
        mine = [c for c in calls if c.tag == tag]
        assert not [c for c in mine if c.at > done], f"task {task_id} ran after its completion"
        # Each stage completes once: a second run of it only follows the death of the
        # instance that was running it.
        lives = 1 + sum(1 for k in kills if view.created_at.timestamp() <= k <= done)
        feedback = sum(1 for c in mine if c.stage == "feedback")
        assert 1 <= feedback <= lives, (task_id, feedback, lives)
    leftovers = fetch(database, "SELECT count(*) AS n FROM live_tasks")
    assert leftovers[0]["n"] == 0
