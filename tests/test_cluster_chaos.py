"""Chaos (slow): real instances behind TCP fault proxies, a real PostgreSQL, under load.

One instance with lost replies on every kind of write; three instances (A, B, C), each
behind a proxy of its own, with a partition of C longer than the lease, one shorter,
an outage of everybody (no restart), and a real ``pg_ctl restart`` of a server the
test starts (no proxy there: the restart is the fault). ILPS stubs, not the real
recogniser, and a lease of three seconds, so that each run takes well under a minute
on two cores.

The rule every run is checked against, from the journal (the events table), the ILPS
stubs (which count every call, per task and stage) and streams:

* the journal of every task is valid (seq 1..n, allowed transitions), each status of
  a run is entered by one STATUS event at most, and exactly one terminal event per
  run ends it as its last event: an instance that lost a task and comes back must
  not write after it (the fence);
* every stage of every task is called exactly once per attempt, with one exception:
  after a real expulsion (a partition longer than the lease), a task the expelled
  instance held when it was cut off may run again the one stage it was in. Its next
  owner resumes at the last persisted stage, and the expelled instance's run of that
  stage is lost (the fence refuses its result); it starts no further stage, because a
  worker starts a stage only once the step before is journalled. So at most one stage
  runs twice, and not one before the status the task had when it was cut off (read
  just before the cut: the stage it was in may have moved on meanwhile). Nothing runs
  twice in a partition shorter than the lease, an outage of everybody or a restart;
* a stream of every task opened on every instance ends at the task's terminal event,
  the journal's last, with every event once (no gap, no duplicate). Only on an
  expelled instance may the stream of a task it lost end early (its feed there ends
  with its actor): it is opened again from Last-Event-ID, as EventSource does.

Waits are on states (rows of the database, read around the proxies; /readyz), never a
sleep before an assert; the one sleep is the length of the short partition itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from threading import Thread
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from supervisor.events import Event, EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.cluster_helpers import (
    Cluster,
    Frame,
    Instance,
    connect_to,
    follow_to_the_end,
    journal_of,
    read_stream,
    submit,
    wait_until,
)
from tests.conftest import MACHINE_HOST, MACHINE_PORT
from tests.fakes import assert_valid_history
from tests.fault_helpers import Call, IlpsStubs, TaskRowView, ilps_stubs, read_journal
from tests.fault_proxy import FaultProxy, fault_proxy
from tests.metrics_helpers import parse, value
from tests.service_helpers import auth
from tests.test_cluster_faults import ENDED, POOL, behind, bound, database, proxy  # noqa: F401
from tests.test_cluster_restart import own_server, restart  # noqa: F401
from tests.test_fault_database import OwnServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: Every status a write sets, the retry's ``created`` and the admission's among them.
WRITES = ["created", "queued", "preprocessing", "transcribing", "evaluating", "completed"]
TASKS = 8


def test_lost_replies_on_every_kind_of_write(
    database: str,  # noqa: F811
    proxy: FaultProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    with (
        ilps_stubs(transcribe_delay=0.2) as stubs,
        behind(proxy, database, tmp_path, stubs, MANAGER_LEASE_SECONDS="10") as cluster,
    ):
        (a,) = cluster.instances
        headers = auth(uuid.uuid4())
        for status in WRITES:
            proxy.lose_reply(bound(status), times=2, name=POOL)
        accepted = []
        for _ in range(TASKS):
            try:
                accepted.append(submit(a.url, headers))
            except (AssertionError, httpx.TransportError):
                pass  # the admission's answer was lost: the task may exist all the same
        # One retried task: its new attempt's writes meet the proxy too.
        first = accepted[0]
        follow_to_the_end([a.url], first, headers)
        cancelled = httpx.post(f"{a.url}/tasks/{first}/retry", headers=headers, timeout=30)
        assert cancelled.status_code in (202, 409)
        for task_id in accepted:
            frames = follow_to_the_end([a.url], task_id, headers, within=60)
            assert frames[-1].data["status"] == "completed", frames
        tasks, _ = journal_of(database)
        for every in tasks:  # the admissions whose answer was lost too
            follow_to_the_end([a.url], str(every), headers, within=60)
        wait_until(lambda: a.readyz()["cluster"]["tasks_owned"] == 0, 10, "A let them go")
    assert proxy.stats.lost_replies >= len(WRITES)
    tasks, journal = journal_of(database)
    assert len(tasks) >= len(accepted)
    for key, view in tasks.items():
        history = journal[key]
        assert_valid_history(history)
        ends = [e for e in history if e.type is EventType.STATUS and e.status in TERMINAL]
        runs = sum(1 for e in history if e.type is EventType.STATUS and e.status is Status.CREATED)
        assert len(ends) == runs, history  # one end per attempt
        assert view.status == Status.COMPLETED.value
        assert view.text_id is not None
        tag = view.text_id.bytes[:8].hex()
        for stage in ("preprocessing", "transcribing", "feedback"):
            calls = [c for c in stubs.calls if c.tag == tag and c.stage == stage]
            assert len(calls) == runs, (key, stage, calls)  # once per attempt


# -- Three instances, each behind a proxy of its own ----------------------------------

#: The lease of the three-instance runs: short, so that the runs stay short, and long
#: enough that two busy cores do not make an instance miss it.
LEASE = 3.0
#: The transcribing stub's delay: a fault lands while tasks are mid-stage.
STAGE = 3.0
STAGES = ("preprocessing", "transcribing", "feedback")
#: At most this many reopenings of one stream.
_REOPEN = 5


@contextmanager
def three_behind(
    name: str, root: Path, stubs: IlpsStubs, **env: str
) -> Iterator[tuple[Cluster, list[FaultProxy]]]:
    """Instances A, B and C on the database ``name``, each through a proxy of its own."""
    with ExitStack() as stack:
        proxies = [stack.enter_context(fault_proxy(MACHINE_HOST, MACHINE_PORT)) for _ in "ABC"]
        settings = {"MANAGER_DB_POSTGRES_HOST": "127.0.0.1", "MANAGER_LEASE_SECONDS": str(LEASE)}
        cluster = Cluster(name, root, stubs, count=3, env={**settings, **env})
        for instance, proxy in zip(cluster.instances, proxies, strict=True):
            instance.env["MANAGER_DB_POSTGRES_PORT"] = str(proxy.port)
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster, proxies


@dataclass
class Streams:
    """A stream of every task on every instance, each read on a thread of its own."""

    frames: dict[tuple[str, str], list[Frame]] = field(default_factory=dict)
    errors: dict[tuple[str, str], BaseException] = field(default_factory=dict)
    readers: list[Thread] = field(default_factory=list)
    #: How often each stream was opened again (it ended before its task did).
    reopened: dict[tuple[str, str], int] = field(default_factory=dict)

    def open(self, instances: list[Instance], task_ids: list[str], headers: dict[str, str]) -> None:
        for instance in instances:
            for task_id in task_ids:
                key = (instance.name, task_id)
                self.frames[key] = []
                reader = Thread(target=self._read, args=(instance.url, key, headers), daemon=True)
                reader.start()
                self.readers.append(reader)
        for key in self.frames:  # each has its opening frames: it follows the task
            wait_until(lambda k=key: self.frames[k] or k in self.errors, 30, f"{key} opened")

    def _read(self, url: str, key: tuple[str, str], headers: dict[str, str]) -> None:
        """As a browser's EventSource reads: a stream that ends before the task's end
        (its actor here stopped: the task was taken over) is opened again, on the same
        instance, from Last-Event-ID."""
        frames = self.frames[key]
        try:
            while True:
                last = next((f.id for f in reversed(frames) if f.id is not None), None)
                frames.extend(read_stream(url, key[1], headers, last))
                if frames and frames[-1].event == "status" and frames[-1].data["status"] in ENDED:
                    return
                self.reopened[key] = self.reopened.get(key, 0) + 1
                if self.reopened[key] > _REOPEN:
                    raise AssertionError(f"reopened {_REOPEN} times: {frames}")
                time.sleep(0.2)  # the client's retry delay
        except Exception as error:  # noqa: BLE001 - reported by check()
            self.errors[key] = error

    def check(
        self,
        journal: dict[uuid.UUID, list[Event]],
        may_reopen: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        """Every stream ended at its task's terminal event, the journal's last, and gave
        every event once (no gap, no duplicate, across its reopenings). Only those in
        ``may_reopen`` (instance, task) ended early: the streams on an expelled instance
        of the tasks it lost (their feed there ends with its actor)."""
        for reader in self.readers:
            reader.join(60)
        assert not [r for r in self.readers if r.is_alive()], "a stream did not end"
        assert not self.errors, self.errors
        assert set(self.reopened) <= may_reopen, self.reopened
        for (name, task_id), frames in self.frames.items():
            last = journal[uuid.UUID(task_id)][-1]
            assert last.status in TERMINAL
            ends = [f for f in frames if f.event == "status" and f.data["status"] in ENDED]
            assert len(ends) == 1, (name, task_id, frames)
            assert frames[-1] is ends[0], (name, task_id, frames)
            assert frames[-1].id == last.seq, (name, task_id, frames[-1], last)
            ids = [f.id for f in frames if f.id is not None]
            history = [(e.seq, e.type.value, e.status.value) for e in journal[uuid.UUID(task_id)]]
            seen = (name, task_id, self.reopened.get((name, task_id)), frames, history)
            assert ids == list(range(1, last.seq + 1)), seen


def submit_round(instances: list[Instance], headers: dict[str, str], per: int) -> list[str]:
    return [submit(i.url, headers) for _ in range(per) for i in instances]


def rows(connect: dict[str, Any], sql: str) -> list[asyncpg.Record]:
    """Straight from the database, never through a proxy."""

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(**connect)
        try:
            found: list[asyncpg.Record] = await connection.fetch(sql)
            return found
        finally:
            await connection.close()

    return anyio.run(run)


def statuses(connect: dict[str, Any]) -> dict[str, str]:
    return {str(r["id"]): r["status"] for r in rows(connect, "SELECT id, status FROM tasks")}


def owned_by(connect: dict[str, Any], owner: uuid.UUID) -> set[str]:
    owned = rows(connect, "SELECT task_id, owner FROM live_tasks")
    return {str(r["task_id"]) for r in owned if r["owner"] == owner}


def members(connect: dict[str, Any]) -> set[uuid.UUID]:
    return {r["id"] for r in rows(connect, "SELECT id FROM cluster_instances")}


def leases(connect: dict[str, Any]) -> dict[uuid.UUID, datetime]:
    found = rows(connect, "SELECT id, lease_until FROM cluster_instances")
    return {r["id"]: r["lease_until"] for r in found}


def now_of(connect: dict[str, Any]) -> datetime:
    when: datetime = rows(connect, "SELECT now() AS now")[0]["now"]
    return when


def all_ended(connect: dict[str, Any], task_ids: list[str]) -> bool:
    now = statuses(connect)
    return all(now.get(t) in ENDED for t in task_ids)


def mid_stage(connect: dict[str, Any], owner: uuid.UUID) -> bool:
    """Whether ``owner`` runs a task in its transcribing stage (the stub holds it)."""
    now = statuses(connect)
    return any(now[t] == "transcribing" for t in owned_by(connect, owner))


def run_to_the_end(
    connect: dict[str, Any],
    task_ids: list[str],
    stubs: IlpsStubs,
    streams: Streams,
    may_repeat: dict[str, str] | None = None,
    expelled: str = "",
) -> None:
    """Wait for every task's end, then check the journal, the stages and the streams
    (``expelled``: the instance that held the tasks of ``may_repeat``)."""
    wait_until(lambda: all_ended(connect, task_ids), 90, "every task ended")
    tasks, journal = anyio.run(read_journal, connect)
    assert {str(t) for t in tasks} == set(task_ids)
    check_runs(tasks, journal, stubs, may_repeat or {})
    streams.check(journal, frozenset((expelled, t) for t in may_repeat or {}))


def nothing_restarted(instances: list[Instance]) -> None:
    """No instance gave a task's actor back (a takeover) or restarted one (a crash)."""
    for instance in instances:
        samples = parse(httpx.get(f"{instance.url}/metrics", timeout=10).text)
        for name in ("stm_recoveries_total", "stm_actor_restarts_total"):
            assert value(samples, name) == 0, (instance.name, name)


def check_runs(
    tasks: dict[uuid.UUID, TaskRowView],
    journal: dict[uuid.UUID, list[Event]],
    stubs: IlpsStubs,
    may_repeat: dict[str, str],
) -> None:
    """The rule above; ``may_repeat``: the tasks an expelled instance held, and the
    status each had when it was cut off."""
    for key, view in tasks.items():
        history = journal[key]
        assert_valid_history(history)
        changes = [e.status for e in history if e.type is EventType.STATUS]
        assert len(changes) == len(set(changes)), history  # no status written twice
        assert history[-1].status in TERMINAL, history
        assert view.status == Status.COMPLETED.value, history
        assert view.text_id is not None
        tag = view.text_id.bytes[:8].hex()
        counts = {s: sum(1 for c in stubs.calls if c.tag == tag and c.stage == s) for s in STAGES}
        twice = [s for s in STAGES if counts[s] == 2]
        timeline = _timeline(history, [c for c in stubs.calls if c.tag == tag])
        seen = "\n".join([f"{key} {counts}", *timeline])
        assert all(1 <= n <= 2 for n in counts.values()), seen
        if twice:
            assert str(key) in may_repeat, seen
            assert len(twice) == 1, seen  # the stage it was in; no stage after it
            assert STAGES.index(twice[0]) >= _stage_of(may_repeat[str(key)]), seen


def _stage_of(status: str) -> int:
    """The index in STAGES of the stage a task in ``status`` runs or runs next."""
    return {"transcribing": 1, "evaluating": 2}.get(status, 0)


def _timeline(history: list[Event], calls: list[Call]) -> list[str]:
    """The task's events and stage calls in time order, for an assertion's message."""
    lines = [(e.created_at.timestamp(), f"event {e.seq} {e.type} {e.status}") for e in history]
    lines += [(c.at, f"call {c.stage}") for c in calls]
    return [f"{at:.3f} {what}" for at, what in sorted(lines)]


def test_a_partition_longer_than_the_lease_hands_over_and_fences(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """C is cut off (every connection held open, silent) while it runs tasks, until it
    is expelled by its lease and A and B have finished its tasks; then it comes back.
    Its late writes meet the fence (nothing after a task's terminal event), it joins
    again under a new identity and runs tasks again; A and B stay members throughout."""
    connect = connect_to(database)
    with (
        ilps_stubs(transcribe_delay=STAGE) as stubs,
        three_behind(database, tmp_path, stubs) as (cluster, proxies),
    ):
        a, b, c = cluster.instances
        ids = {i.name: i.instance_id() for i in cluster.instances}
        headers = auth(uuid.uuid4())
        task_ids = submit_round(cluster.instances, headers, per=2)
        streams = Streams()
        streams.open(cluster.instances, task_ids, headers)
        wait_until(lambda: mid_stage(connect, ids["C"]), 20, "C runs a stage")
        proxies[2].blackhole("")
        # C can change nothing from now on (a write in flight lands later or never).
        now = statuses(connect)
        held = {t: now[t] for t in owned_by(connect, ids["C"])}
        assert held
        task_ids += submit_round([a, b], headers, per=1)  # the load goes on
        wait_until(lambda: ids["C"] not in members(connect), 4 * LEASE, "C expelled")
        wait_until(lambda: all_ended(connect, sorted(held)), 60, "C's tasks ended elsewhere")
        proxies[2].heal()
        wait_until(lambda: c.instance_id() != ids["C"], 30, "C joined again")
        task_ids += submit_round([c], headers, per=1)
        run_to_the_end(connect, task_ids, stubs, streams, may_repeat=held, expelled="C")
        assert {ids["A"], ids["B"]} <= members(connect)


def test_a_partition_shorter_than_the_lease_changes_nothing(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """C is cut off for half a lease while it runs a stage: nobody is expelled, no
    stage runs twice, its held writes land when the partition heals."""
    connect = connect_to(database)
    with (
        ilps_stubs(transcribe_delay=STAGE) as stubs,
        three_behind(database, tmp_path, stubs) as (cluster, proxies),
    ):
        before = members(connect)
        ids = {i.name: i.instance_id() for i in cluster.instances}
        headers = auth(uuid.uuid4())
        task_ids = submit_round(cluster.instances, headers, per=2)
        streams = Streams()
        streams.open(cluster.instances, task_ids, headers)
        wait_until(lambda: mid_stage(connect, ids["C"]), 20, "C runs a stage")
        proxies[2].blackhole("")
        time.sleep(LEASE / 2)  # the partition itself, not a wait for a result
        proxies[2].heal()
        run_to_the_end(connect, task_ids, stubs, streams)
        assert members(connect) == before
        assert {i.instance_id() for i in cluster.instances} == before
        nothing_restarted(cluster.instances)


def test_a_database_restart_under_load(own_server: OwnServer, tmp_path: Path) -> None:  # noqa: F811
    """A real ``pg_ctl restart`` while the three instances run tasks mid-stage (no
    proxy: the restart is the fault): nobody is expelled and no stage runs twice."""
    host = own_server.url.query["host"]
    assert isinstance(host, str)
    connect = {"host": host, "user": "postgres", "database": "tasks"}
    rows({**connect, "database": "postgres"}, 'CREATE DATABASE "tasks"')
    env = {"MANAGER_DB_POSTGRES_HOST": host, "MANAGER_LEASE_SECONDS": str(LEASE)}
    with ilps_stubs(transcribe_delay=STAGE) as stubs:
        cluster = Cluster("tasks", tmp_path, stubs, count=3, env=env)
        try:
            cluster.start()
            before = members(connect)
            headers = auth(uuid.uuid4())
            task_ids = submit_round(cluster.instances, headers, per=2)
            streams = Streams()
            streams.open(cluster.instances, task_ids, headers)
            wait_until(
                lambda: sum(s == "transcribing" for s in statuses(connect).values()) >= 3,
                20,
                "tasks mid-stage",
            )
            restart(own_server)
            task_ids += submit_round(cluster.instances, headers, per=1)
            run_to_the_end(connect, task_ids, stubs, streams)
            assert members(connect) == before
            nothing_restarted(cluster.instances)
        finally:
            cluster.stop()


def test_an_outage_for_everybody_expels_nobody(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The database is out of reach for all three for longer than the lease, without a
    restart; then A gets it back first, and B and C a moment later. Every lease ran out
    in the outage, when nobody could renew: A's renewals must not take B's and C's
    for evidence (A had itself been away), and nobody is expelled. Before the fix, A's
    first renewal on time removed B and C, whose tasks then ran their stage again."""
    connect = connect_to(database)
    with (
        ilps_stubs(transcribe_delay=STAGE) as stubs,
        three_behind(database, tmp_path, stubs) as (cluster, proxies),
    ):
        before = members(connect)
        ids = {i.name: i.instance_id() for i in cluster.instances}
        headers = auth(uuid.uuid4())
        task_ids = submit_round(cluster.instances, headers, per=1)
        streams = Streams()
        streams.open(cluster.instances, task_ids, headers)
        wait_until(lambda: mid_stage(connect, ids["B"]), 20, "B runs a stage")
        for proxy in proxies:
            proxy.blackhole("")
        wait_until(
            lambda: all(u < now_of(connect) for u in leases(connect).values()),
            3 * LEASE,
            "every lease ran out",
        )
        proxies[0].heal()
        for _ in range(2):  # A renews, then renews on time: it could expel now
            renewed = leases(connect)[ids["A"]]
            wait_until(lambda r=renewed: leases(connect)[ids["A"]] > r, 3 * LEASE, "A renews")
        proxies[1].heal()
        proxies[2].heal()
        healed = now_of(connect)
        run_to_the_end(connect, task_ids, stubs, streams)
        # A renewal of A's a lease past the heal: B and C had a lease to renew in.
        wait_until(
            lambda: leases(connect)[ids["A"]] > healed + timedelta(seconds=2 * LEASE),
            4 * LEASE,
            "A renewed a lease after the heal",
        )
        assert members(connect) == before
        assert {i.instance_id() for i in cluster.instances} == before
        nothing_restarted(cluster.instances)
