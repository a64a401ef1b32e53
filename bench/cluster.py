"""The cluster: failover, cross-instance events, fan-out over instances, processes.

    python bench/cluster.py          (BENCH_QUICK=1: a reduced run; BENCH_ONLY=a,b: some)

Real ``run.py`` processes on fresh databases of the machine's PostgreSQL (one per
scenario, dropped afterwards), the stages at the ILPS stubs (``bench/_stubs.py``).
Every time is this machine's wall clock: an event's ``created_at`` is PostgreSQL's
``now()`` on the same machine, so it compares with ``time.time()`` here.

* ``failover_lock``: 3 instances; a task mid-``transcribing`` (the stub takes 2 s),
  its owner ``kill -9``-ed; seconds from the kill to the first event of the task
  persisted after it (its ``created_at``; and its receipt on a stream held on
  another instance). The dead session's advisory lock wakes its watcher.
* ``failover_lease``: the same with the owner ``SIGSTOP``-ed (it keeps its lock; the
  lease runs out), then ``SIGCONT``-ed.
* ``event_latency_idle``: one task at a time run on B, followed by a stream on A and
  one on B; receipt minus ``created_at`` of each live event.
* ``fanout``: streams spread over 3 instances following one task run on one of them.
* ``throughput``: ``MANAGER_PROCESSES=1`` and ``2`` on one port: admission (wrk,
  ``POST /tasks`` at c=16, stages held at the gate) and end to end (K tasks submitted
  at c=16 until all complete); median of 3, interleaved.
* ``statements_per_task``: one instance, K tasks end to end; commits and row writes
  from ``pg_stat_database``/``pg_stat_user_tables``, notifications by LISTEN.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
import uvloop  # noqa: E402

from bench._common import (  # noqa: E402
    PG,
    PY,
    ROOT,
    RUNS,
    SseClients,
    create_tasks,
    free_port,
    latency_summary,
    machine,
    median,
    migrate,
    multipart,
    percentile,
    post_lua,
    psql,
    raise_nofile,
    service,
    service_env,
    stub_control,
    stub_env,
    stubs,
    token,
    wav_bytes,
    wrk,
)

QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
KILLS = 5 if QUICK else 20
PAUSES = 2 if QUICK else 5
IDLE_TASKS = 10 if QUICK else 50
FANOUT_STREAMS = 150 if QUICK else 1000
FANOUT_RUNS = 1 if QUICK else RUNS
THROUGHPUT_RUNS = 1 if QUICK else RUNS
ADMISSION_SECONDS = 2.0 if QUICK else 5.0
E2E_TASKS = 200 if QUICK else 1000
STATEMENT_TASKS = 30 if QUICK else 200

LOCK_LEASE_S = 10.0
PAUSE_LEASE_S = 3.0
FAILOVER_TRANSCRIBE_S = 2.0
#: The 3-instance scenarios run one task at a time: a smaller pool than the default
#: 20 keeps 3 instances (plus anything else on this PostgreSQL) under max_connections.
CLUSTER_POOL = 10
FIELDS = {"text_id": str(uuid.UUID(int=7))}  # a text: all three stages run
TERMINAL = {"completed", "failed", "cancelled"}
#: Idle backends flush their statistics within PGSTAT_IDLE_INTERVAL (10 s).
STATS_SETTLE_S = 11.0
CHANNELS = ("stm_events", "stm_claimable", "stm_members", "stm_cancel", "stm_deleted")

WORK = Path(tempfile.mkdtemp(prefix="bench-cluster-"))


# -- the statements this script runs ------------------------------------------------

_STATS = """
SELECT d.xact_commit AS commits, d.xact_rollback AS rollbacks,
(SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')) AS ended,
coalesce((
    SELECT json_object_agg(
        relname, json_build_array(n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd)
    )
    FROM pg_stat_user_tables WHERE relname IN ('tasks', 'task_events', 'live_tasks')
), '{}') AS tables
FROM pg_stat_database d WHERE d.datname = current_database()
"""
_NOTIFYING_TABLE = """
CREATE TABLE bench_notify (id bigserial PRIMARY KEY, v int);
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_notify', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notifies AFTER INSERT ON bench_notify
    FOR EACH ROW EXECUTE FUNCTION bench_notify();
"""
_WAITS = """
SELECT coalesce(wait_event_type || ':' || wait_event, '-') AS wait FROM pg_stat_activity
WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()
  AND application_name NOT LIKE 'stm watch%'
"""
_OWNER = "SELECT owner FROM live_tasks WHERE task_id = $1"
_ENDED = "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')"


# -- helpers -------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sql(text: str, db: str = "postgres") -> str:
    """``psql``, tried again for up to a minute: other work shares this PostgreSQL and
    its ``max_connections``, so a connection may be refused for a while."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return psql(text, db)
        except subprocess.CalledProcessError as error:
            if time.monotonic() > deadline:
                raise
            log(f"psql failed ({error.stderr.strip()}); trying again")
            time.sleep(1.0)


async def _connect(db: str) -> Any:
    """An asyncpg connection, waiting (up to a minute) for a free slot on the server."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await asyncpg.connect(host=PG["host"], user="postgres", database=db)
        except asyncpg.TooManyConnectionsError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


@contextlib.contextmanager
def database(prefix: str) -> Iterator[str]:
    """A fresh, empty database, dropped afterwards: ``_common.database`` through ``sql``,
    so that a moment without free connections does not leave it behind."""
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wanted(name: str) -> bool:
    return not ONLY or name in ONLY


# -- instances -----------------------------------------------------------------


@dataclass
class Instance:
    """One ``run.py`` of the cluster, in a data directory of its own."""

    name: str
    db: str
    settings: dict[str, Any]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return WORK / self.db / self.name

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = service_env(
            self.db, self.port, instance_name=self.name, data_dir=self.data_dir, **self.settings
        )
        with (self.data_dir / "service.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [PY, "run.py"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile,
            )

    def readyz(self) -> dict[str, Any] | None:
        """The readiness answer, or None while it is not ready (or not answering)."""
        try:
            answer = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body

    def wait_ready(self, within: float = 90.0, not_id: str | None = None) -> str:
        """Wait until ready and listening; its instance id (one other than ``not_id``)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.data_dir / 'service.log'}")
            body = self.readyz()
            cluster = (body or {}).get("cluster") or {}
            if cluster.get("events") == "listen" and cluster.get("instance") != not_id:
                return str(cluster["instance"])
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready within {within} s")

    def last_error(self) -> str | None:
        """The last line of its log that names an error (a traceback's last line)."""
        lines = (self.data_dir / "service.log").read_text(errors="replace").splitlines()
        errors = [line.strip(" |") for line in lines if "Error" in line]
        return errors[-1] if errors else None

    def instance_id(self) -> str:
        return self.wait_ready(10)

    def kill9(self) -> float:
        """``kill -9``; the wall clock just after the signal."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        self.proc.wait(10)
        return killed

    def pause(self) -> float:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        return time.time()

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """SIGTERM (after SIGCONT if paused); SIGKILL if it does not end in 30 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        self.paused = False
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Cluster:
    db: str
    ports: dict[str, int]
    instances: list[Instance]

    def ids(self) -> dict[str, Instance]:
        """Instance id (as in ``live_tasks.owner``) to instance."""
        return {i.instance_id(): i for i in self.instances}

    def members(self) -> int:
        return int(sql("SELECT count(*) FROM cluster_instances", self.db))

    def heal(self) -> list[dict[str, Any]]:
        """Start again every instance that ended by itself (a crash: every cut of this
        script restarts its instance at once); what ended, and why."""
        crashed = []
        for instance in self.instances:
            proc = instance.proc
            if proc is not None and proc.poll() is not None:
                crash = {"instance": instance.name, "exit": proc.returncode}
                crash["error"] = instance.last_error()
                log(f"instance {instance.name} ended by itself: {crash}; starting it again")
                crashed.append(crash)
                instance.start()
                instance.wait_ready()
        self.wait_members(len(self.instances))
        return crashed

    def wait_members(self, count: int, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while self.members() != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not {count} members within {within} s")
            time.sleep(0.1)


@contextlib.contextmanager
def cluster(
    prefix: str, delays: dict[str, float], count: int = 3, **settings: Any
) -> Iterator[Cluster]:
    """``count`` instances (A, B, C...) on a fresh database, migrated once first."""
    with stubs(**delays) as ports, database(prefix) as db:
        migrate(db)
        config = {"db_pool_size": CLUSTER_POOL, **stub_env(ports), **settings}
        instances = [Instance("ABCDEFGH"[i], db, config) for i in range(count)]
        try:
            for instance in instances:
                instance.start()
            for instance in instances:
                instance.wait_ready()
            running = Cluster(db, ports, instances)
            running.wait_members(count)
            yield running
        finally:
            for instance in instances:
                instance.stop()


# -- watching from outside: a stream, the live row, the backends ---------------------


Frame = tuple[float, dict[str, Any]]


class Follower(threading.Thread):
    """A task's stream from its start (replayed, then live), every frame with the
    wall clock of its receipt; it ends at the terminal event."""

    def __init__(self, url: str, task_id: str, bearer: str) -> None:
        super().__init__(daemon=True)
        self._url = f"{url}/tasks/{task_id}/events"
        self._headers = {"Authorization": f"Bearer {bearer}"}
        self._changed = threading.Condition()
        self.frames: list[Frame] = []
        self.ended = False
        self.error: str | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self._url, headers=self._headers, timeout=90) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    received = time.time()
                    data = json.loads(line[5:])
                    with self._changed:
                        self.frames.append((received, data))
                        self._changed.notify_all()
                    if data.get("type") == "status" and data.get("status") in TERMINAL:
                        return
        except httpx.HTTPError as error:
            self.error = repr(error)
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def wait_for(self, check: Callable[[dict[str, Any]], bool], within: float) -> Frame:
        """The first frame (received so far or later) for which ``check`` holds."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for frame in self.frames:
                    if check(frame[1]):
                        return frame
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    raise TimeoutError(f"no such frame ({self.error or 'stream ended'})")
                self._changed.wait(left)

    def seqs(self) -> list[int]:
        with self._changed:
            return [int(d["seq"]) for _, d in self.frames if "seq" in d]


class DbPoller(threading.Thread):
    """Runs ``sample`` every ``interval`` s on a connection of its own, in a thread of
    its own (the scenarios around it are synchronous), until ``stop`` or ``done``."""

    interval = 0.005

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.polling = threading.Event()
        self.stop = threading.Event()
        self.done = False

    def run(self) -> None:
        asyncio.run(self._poll())

    async def _poll(self) -> None:
        conn = await _connect(self.db)
        try:
            while not self.stop.is_set() and not self.done:
                await self.sample(conn)
                self.polling.set()
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    async def sample(self, conn: Any) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        self.polling.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.join(10)


class OwnerWatch(DbPoller):
    """A task's live row every 5 ms from just before a cut: when its owner was removed
    (owner NULL) and when another instance claimed it. The new owner writes no event on
    taking a task over, so this is the only way to see the takeover itself."""

    def __init__(self, db: str, task_id: str, old_owner: str) -> None:
        super().__init__(db)
        self._task_id = uuid.UUID(task_id)
        self._old = old_owner
        self.released: float | None = None
        self.claimed: float | None = None
        self.new_owner: str | None = None

    async def sample(self, conn: Any) -> None:
        row = await conn.fetchrow(_OWNER, self._task_id)
        now = time.time()
        owner = None if row is None or row["owner"] is None else str(row["owner"])
        if owner is None and self.released is None:
            self.released = now
        elif owner is not None and owner != self._old:
            self.released = self.released or now
            self.claimed, self.new_owner = now, owner
            self.done = True


class WaitSampler(DbPoller):
    """What the database's busy backends wait on, sampled every 20 ms (the watch
    connections, blocked on a lock by design, left out)."""

    interval = 0.02

    def __init__(self, db: str) -> None:
        super().__init__(db)
        self.seen: Counter[str] = Counter()
        self.samples = 0

    async def sample(self, conn: Any) -> None:
        self.samples += 1
        for row in await conn.fetch(_WAITS, self.db):
            self.seen[row["wait"]] += 1

    def summary(self) -> dict[str, float]:
        """Mean busy backends per sample, by wait event (``-``: on the CPU)."""
        top = self.seen.most_common(5)
        return {wait: round(n / max(self.samples, 1), 2) for wait, n in top}


def submit(url: str, bearer: str) -> str:
    """One task (1 s WAV, with a text_id); its id."""
    body, content_type = multipart(wav_bytes(1.0), FIELDS)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": content_type}
    answer = httpx.post(f"{url}/tasks", content=body, headers=headers, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["id"])


def owner_of(db: str, task_id: str, within: float = 10.0) -> str:
    """``live_tasks.owner`` of the task, once it has one."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        owner = sql(f"SELECT owner FROM live_tasks WHERE task_id = '{task_id}'", db)
        if owner:
            return owner
        time.sleep(0.05)
    raise TimeoutError(f"task {task_id} has no owner")


def created(data: dict[str, Any]) -> float:
    return datetime.fromisoformat(data["created_at"]).timestamp()


# -- 1, 2: failover ------------------------------------------------------------------


Cut = Literal["kill", "stop"]


def failover_once(run: Cluster, bearer: str, rep: int, cut: Cut) -> dict[str, Any]:
    """Submit to one instance, follow from another, cut the owner mid-transcribing."""
    ids = run.ids()
    task_id = submit(run.instances[rep % len(run.instances)].url, bearer)
    owner_id = owner_of(run.db, task_id)
    owner = ids[owner_id]
    watcher = next(i for i in run.instances if i is not owner)
    follower = Follower(watcher.url, task_id, bearer)
    follower.start()
    try:
        follower.wait_for(lambda d: d.get("status") == "transcribing", 30)
        last_seen = max(follower.seqs())
        with OwnerWatch(run.db, task_id, owner_id) as watch:
            cut_at = owner.kill9() if cut == "kill" else owner.pause()
            try:
                # The first event persisted after the cut, whoever wrote it (in order).
                received, first = follower.wait_for(lambda d: created(d) > cut_at, 60)
                stalled = _stalled(run.db, task_id, follower)
            finally:
                if cut == "kill":
                    owner.start()
                    owner.wait_ready()
                else:
                    owner.resume()
                    owner.wait_ready(not_id=owner_id)  # expelled: it joins under a new id
    finally:
        follower.join(10)
    seqs = follower.seqs()
    return {
        "s": round(created(first) - cut_at, 3),
        "received_s": round(received - cut_at, 3),
        "released_s": _since(watch.released, cut_at),
        "claimed_s": _since(watch.claimed, cut_at),
        "first_after": f"{first['type']}:{first['status']}",
        "seq_seen_at_cut": last_seen,
        "owner": owner.name,
        "stream_on": watcher.name,
        "new_owner": ids[watch.new_owner].name if watch.new_owner in ids else watch.new_owner,
        "complete_in_order": seqs == list(range(1, len(seqs) + 1))
        and follower.frames[-1][1].get("status") == "completed",
        "stalled": stalled,
    }


def _stalled(db: str, task_id: str, follower: Follower) -> dict[str, Any] | None:
    """None once the stream has the terminal event; if it has not within 20 s, what
    the database holds against what the stream got (a stream that stopped short)."""
    try:
        follower.wait_for(lambda d: d.get("status") in TERMINAL, 20)
        return None
    except TimeoutError:
        status, last_seq = sql(
            f"SELECT status, last_seq FROM tasks WHERE id = '{task_id}'", db
        ).split("|")
        seen = max(follower.seqs())
        log(f"task {task_id}: the stream stopped at seq {seen}; stored: {last_seq} ({status})")
        return {"db_status": status, "db_last_seq": int(last_seq), "stream_last_seq": seen}


def _since(moment: float | None, start: float) -> float | None:
    return None if moment is None else round(moment - start, 3)


def failover(cut: Cut, reps: int, lease: float) -> dict[str, Any]:
    delays = {"transcribing": FAILOVER_TRANSCRIBE_S}
    bearer = token(uuid.uuid4())
    runs: list[dict[str, Any]] = []
    with cluster(f"fo{cut}", delays, lease_seconds=lease) as run:
        for rep in range(reps):
            try:
                result = failover_once(run, bearer, rep, cut)
            except (TimeoutError, RuntimeError, httpx.HTTPError) as error:
                result = {"error": repr(error)}  # reported; the run goes on
            crashed = run.heal()
            if crashed:
                result["crashed"] = crashed
            log(f"failover {cut} {rep + 1}/{reps}: {result}")
            runs.append(result)
    done = [r for r in runs if "error" not in r]
    times = [r["s"] for r in done]
    received = [r["received_s"] for r in done]
    claimed = [r["claimed_s"] for r in done if r["claimed_s"] is not None]
    return {
        "p50_s": percentile(times, 50),
        "p99_s": percentile(times, 99),
        "max_s": max(times),
        "received_p50_s": percentile(received, 50),
        "received_p99_s": percentile(received, 99),
        # The takeover itself: the task claimed by a survivor (then its stage starts again).
        "claimed_p50_s": percentile(claimed, 50),
        "claimed_p99_s": percentile(claimed, 99),
        "all_complete_in_order": all(r["complete_in_order"] for r in done),
        "stalled_streams": sum(1 for r in done if r["stalled"]),
        "failed_runs": len(runs) - len(done),
        "instance_crashes": sum(len(r.get("crashed", [])) for r in runs),
        "lease_s": lease,
        "transcribe_stub_s": FAILOVER_TRANSCRIBE_S,
        "runs": runs,
    }


# -- 3, 4: events across instances -----------------------------------------------------


def wait_status(db: str, task_id: str, status: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while sql(f"SELECT status FROM tasks WHERE id = '{task_id}'", db) != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} not {status} within {within} s")
        time.sleep(0.02)


def warm_up(run: Cluster, url: str, bearer: str, count: int = 3) -> None:
    """A few tasks end to end (connections, prepared statements), waited for: one still
    running would hold a slot once the gate closes."""
    ids = create_tasks(url, bearer, count, 1, FIELDS)
    for task_id in ids:
        wait_status(run.db, task_id, "completed", 30)


def held_task(run: Cluster, url: str, bearer: str) -> str:
    """A task created on ``url``, held in ``preprocessing`` at the stubs' gate: every
    stream opened now sees the same live events once the gate opens."""
    stub_control(run.ports, "close")
    (task_id,) = create_tasks(url, bearer, 1, 1, FIELDS)
    wait_status(run.db, task_id, "preprocessing")
    return task_id


def event_latency_idle() -> dict[str, Any]:
    """One task at a time, run on B; a stream on A (cross) and one on B (same)."""
    bearer = token(uuid.uuid4())
    cross, same = SseClients(1), SseClients(1)
    lat: dict[str, list[float]] = {"cross": [], "same": [], "difference": []}
    skipped: list[dict[str, Any]] = []  # why: [stream on A, stream on B]
    try:
        with cluster("evl", {"transcribing": 0.01}) as run:
            a, b = run.instances[0], run.instances[1]
            b_id = b.instance_id()
            warm_up(run, b.url, bearer)
            for _ in range(IDLE_TASKS):
                task_id = held_task(run, b.url, bearer)
                path = f"/tasks/{task_id}/events"
                cross.open(a.url, bearer, 1, [path])
                same.open(b.url, bearer, 1, [path])
                ran_on_b = owner_of(run.db, task_id) == b_id
                time.sleep(0.05)
                stub_control(run.ports, "open")
                got_a, got_b = cross.wait(30), same.wait(30)
                on_a, on_b = got_a["latencies_ms"], got_b["latencies_ms"]
                if not ran_on_b or len(on_a) != len(on_b):
                    skipped.append(
                        {
                            "ran_on_b": ran_on_b,
                            "events": [got_a["events"], got_b["events"]],
                            "complete": [got_a["complete_in_order"], got_b["complete_in_order"]],
                        }
                    )
                    continue
                lat["cross"] += on_a
                lat["same"] += on_b
                # The same events, in order: what crossing instances adds to each one.
                lat["difference"] += [x - y for x, y in zip(on_a, on_b, strict=True)]
            baseline = asyncio.run(_pg_baseline(run.db, 5 * IDLE_TASKS))
    finally:
        cross.close()
        same.close()
    return {
        "tasks": IDLE_TASKS,
        "cross_instance": latency_summary(lat["cross"]),
        "same_instance": latency_summary(lat["same"]),
        "cross_minus_same": latency_summary(lat["difference"]),
        "tasks_skipped": len(skipped),
        "skipped": skipped,
        "baseline_pg": baseline,
    }


async def _pg_baseline(db: str, count: int) -> dict[str, Any]:
    """What PostgreSQL alone takes, same database, same moment: a one-row INSERT whose
    trigger notifies (as task_events' does), from the statement's start to its answer
    (``commit``) and to the notification's arrival on another connection (``notify``)."""
    writer, listener = await _connect(db), await _connect(db)
    try:
        await writer.execute(_NOTIFYING_TABLE)
        heard: asyncio.Queue[float] = asyncio.Queue()
        await listener.add_listener(
            "bench_notify", lambda *_: heard.put_nowait(time.perf_counter())
        )
        commit, notify = [], []
        for _ in range(count):
            started = time.perf_counter()
            await writer.execute("INSERT INTO bench_notify (v) VALUES (1)")
            commit.append((time.perf_counter() - started) * 1000)
            notify.append((await heard.get() - started) * 1000)
            await asyncio.sleep(0.01)
    finally:
        await writer.close()
        await listener.close()
    return {"insert_commit": latency_summary(commit), "insert_to_notified": latency_summary(notify)}


def fanout_once(run: Cluster, bearer: str, clients: list[SseClients]) -> dict[str, Any]:
    owner = run.instances[1]
    task_id = held_task(run, owner.url, bearer)
    path = f"/tasks/{task_id}/events"
    count = len(run.instances)
    shares = [FANOUT_STREAMS // count + (i < FANOUT_STREAMS % count) for i in range(count)]
    opened = sum(
        c.open(i.url, bearer, n, [path])
        for c, i, n in zip(clients, run.instances, shares, strict=True)
    )
    time.sleep(0.5)
    stub_control(run.ports, "open")
    results = [c.wait(60) for c in clients]
    every = [x for r in results for x in r["latencies_ms"]]
    out = latency_summary(every)
    out["opened"] = opened
    out["complete_in_order"] = sum(r["complete_in_order"] for r in results)
    # Streams on the owner get the actor's publish; the others each one hub read.
    out["by_instance"] = {
        f"{i.name}{' (owner)' if i is owner else ''}": latency_summary(r["latencies_ms"])
        for i, r in zip(run.instances, results, strict=True)
    }
    return out


def fanout() -> dict[str, Any]:
    bearer = token(uuid.uuid4())
    clients = [SseClients(1) for _ in range(3)]  # one client process per instance
    try:
        with cluster("fan", {"transcribing": 0.01}) as run:
            warm_up(run, run.instances[1].url, bearer)
            runs = [fanout_once(run, bearer, clients) for _ in range(FANOUT_RUNS)]
    finally:
        for c in clients:
            c.close()
    for r in runs:
        log(f"fanout: {json.dumps({k: v for k, v in r.items() if k != 'by_instance'})}")
    return {
        "streams": FANOUT_STREAMS,
        "instances": 3,
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "runs": runs,
    }


# -- 5: throughput by processes ----------------------------------------------------------


def wait_processes(db: str, count: int, within: float = 60.0) -> None:
    """Every service process has joined (``/healthz`` answers with the first)."""
    deadline = time.monotonic() + within
    while int(sql("SELECT count(*) FROM cluster_instances", db)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} processes did not join within {within} s")
        time.sleep(0.1)


def cpu_seconds(launcher: int) -> dict[int, float]:
    """CPU seconds so far of each service process under the launcher (itself if none)."""
    root = psutil.Process(launcher)
    procs = root.children() or [root]
    return {p.pid: sum(p.cpu_times()[:2]) for p in procs}


def admission_once(processes: int, lua: str) -> dict[str, Any]:
    """wrk ``POST /tasks`` at c=16; the stages held at the gate, capacity 1."""
    with stubs() as ports, database("thr") as db:
        stub_control(ports, "close")
        settings = {"processes": processes, "capacity": 1, "data_dir": WORK / db}
        with service(db, **settings, **stub_env(ports)) as (url, proc):
            wait_processes(db, processes)
            wrk(url + "/tasks", connections=16, seconds=1, lua=lua)  # warm-up
            before = cpu_seconds(proc.pid)
            with WaitSampler(db) as waits:
                result = wrk(url + "/tasks", connections=16, seconds=ADMISSION_SECONDS, lua=lua)
            after = cpu_seconds(proc.pid)
    result["cpu_s_by_process"] = [round(after[p] - before.get(p, 0.0), 2) for p in after]
    result["db_waits"] = waits.summary()
    return result


def create_spread(url: str, bearer: str, count: int, concurrency: int = 16) -> None:
    """Like ``create_tasks`` (c=16), but a new connection for each upload, as from many
    independent clients.

    Why: the processes share one listening socket, and the event loop that wakes for
    it accepts every connection waiting; a pool's 16 keep-alive connections, opened
    together, mostly land on one process, and each task runs where it was admitted."""
    body, content_type = multipart(wav_bytes(1.0), FIELDS)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": content_type}
    limits = httpx.Limits(max_keepalive_connections=0)

    async def sender(client: httpx.AsyncClient, share: int) -> None:
        for _ in range(share):
            answer = await client.post("/tasks", content=body, headers=headers)
            answer.raise_for_status()

    async def senders() -> None:
        shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            await asyncio.gather(*(sender(client, n) for n in shares if n))

    asyncio.run(senders())


def e2e_once(processes: int) -> dict[str, Any]:
    """Submit E2E_TASKS at c=16 (transcribing 0.2 s, capacity 64 per process) until done."""
    bearer = token(uuid.uuid4())
    with stubs(transcribing=0.2) as ports, database("thr") as db:
        settings = {"processes": processes, "capacity": 64, "data_dir": WORK / db}
        with service(db, **settings, **stub_env(ports)) as (url, proc):
            wait_processes(db, processes)
            before = cpu_seconds(proc.pid)
            started = time.perf_counter()
            sender = threading.Thread(target=create_spread, args=(url, bearer, E2E_TASKS))
            sender.start()
            samples: list[tuple[float, int]] = []
            done = 0
            with WaitSampler(db) as waits:
                while done < E2E_TASKS and time.perf_counter() - started < 600:
                    done = int(sql(_ENDED, db))
                    samples.append((time.perf_counter() - started, done))
                    time.sleep(0.25)  # psql is a process: polled sparingly on 2 cores
            sender.join()
            after = cpu_seconds(proc.pid)
            failed = int(sql("SELECT count(*) FROM tasks WHERE status = 'failed'", db))
    elapsed = samples[-1][0]
    t10 = next(t for t, d in samples if d >= E2E_TASKS * 0.1)
    t90 = next(t for t, d in samples if d >= E2E_TASKS * 0.9)
    return {
        "per_s": round(done / elapsed, 1),
        "steady_per_s": round(0.8 * E2E_TASKS / (t90 - t10), 1),
        "all_done_s": round(elapsed, 2),
        "completed": done - failed,
        "failed": failed,
        "cpu_s_by_process": [round(after[p] - before.get(p, 0.0), 2) for p in after],
        "db_waits": waits.summary(),
    }


async def _commit_rate(db: str, table: str, connections: int, seconds: float) -> float:
    """One-row INSERT+COMMITs per second on ``connections`` connections at once."""
    conns = [await _connect(db) for _ in range(connections)]
    count = 0
    deadline = time.perf_counter() + seconds

    async def loop(conn: Any) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await conn.execute(f"INSERT INTO {table} (v) VALUES (1)")
            count += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return round(count / (time.perf_counter() - started), 1)


def commit_rates() -> dict[str, float]:
    """PostgreSQL alone: commits/s of a plain one-row INSERT and of one whose trigger
    notifies (as task_events' does). A notifying commit holds the server-wide lock of
    the notification queue until its WAL is flushed, so those commits go one by one."""
    seconds = 2.0 if QUICK else 3.0
    with database("commits") as db:
        sql(_NOTIFYING_TABLE + "CREATE TABLE bench_plain (id bigserial PRIMARY KEY, v int);", db)
        return {
            f"{table.removeprefix('bench_')}_{n}_conn": asyncio.run(
                _commit_rate(db, table, n, seconds)
            )
            for table in ("bench_plain", "bench_notify")
            for n in (1, 16)
        }


def throughput() -> dict[str, Any]:
    body, content_type = multipart(wav_bytes(1.0), {"title": "bench"})
    body_path = WORK / "body.bin"
    body_path.write_bytes(body)
    lua = post_lua(str(body_path), content_type, token(uuid.uuid4()))
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {
        1: {"adm": [], "e2e": []},
        2: {"adm": [], "e2e": []},
    }
    for rep in range(THROUGHPUT_RUNS):  # interleaved: the machine's drift hits both alike
        for n in (1, 2):
            runs[n]["adm"].append(admission_once(n, lua))
            runs[n]["e2e"].append(e2e_once(n))
            adm, e2e = runs[n]["adm"][-1], runs[n]["e2e"][-1]
            log(f"throughput {rep + 1}, processes={n}: admission {adm}; e2e {e2e}")
    out: dict[str, Any] = {}
    for n in (1, 2):
        out[f"processes_{n}"] = {
            "admission_per_s": median([r["rps"] for r in runs[n]["adm"]]),
            "admission_p99_ms": median([r["p99_ms"] for r in runs[n]["adm"]]),
            "e2e_per_s": median([r["per_s"] for r in runs[n]["e2e"]]),
            "e2e_steady_per_s": median([r["steady_per_s"] for r in runs[n]["e2e"]]),
            "admission_runs": runs[n]["adm"],
            "e2e_runs": runs[n]["e2e"],
        }
    one, two = out["processes_1"], out["processes_2"]
    out["ratio"] = {
        key: round(two[key] / one[key], 2)
        for key in ("admission_per_s", "e2e_per_s", "e2e_steady_per_s")
    }
    out["e2e_tasks"] = E2E_TASKS
    out["admission_seconds"] = ADMISSION_SECONDS
    out["baseline_pg_commits_per_s"] = commit_rates()
    return out


# -- 6: statements per task ----------------------------------------------------------------


async def _stats(db: str) -> dict[str, Any]:
    """A snapshot on a connection of its own (its one commit shows in the next)."""
    conn = await _connect(db)
    try:
        row = await conn.fetchrow(_STATS)
    finally:
        await conn.close()  # a closing backend flushes its statistics
    return {
        "commits": row["commits"],
        "rollbacks": row["rollbacks"],
        "ended": row["ended"],
        "tables": json.loads(row["tables"]),
    }


async def _wait_ended(db: str, count: int) -> int:
    """Poll until ``count`` tasks have ended; how many statements that took."""
    polls = 0
    poller = await _connect(db)
    try:
        while True:
            polls += 1
            if await poller.fetchval(_ENDED) >= count:
                return polls
            await asyncio.sleep(0.25)
    finally:
        await poller.close()


def _per_task(before: dict[str, Any], after: dict[str, Any], k: int) -> dict[str, Any]:
    tables = {}
    for name in ("tasks", "task_events", "live_tasks"):
        was, now = before["tables"].get(name, [0] * 4), after["tables"].get(name, [0] * 4)
        ins, upd, dele, hot = (round((b - a) / k, 2) for a, b in zip(was, now, strict=True))
        tables[name] = {"inserts": ins, "updates": upd, "deletes": dele, "hot_updates": hot}
    return tables


async def _statements(db: str, url: str, bearer: str, k: int) -> dict[str, Any]:
    """An idle window (the background rate), then ``k`` tasks end to end, each window
    read after the statistics settled."""
    heard: Counter[str] = Counter()
    listener = await _connect(db)
    for channel in CHANNELS:
        await listener.add_listener(channel, lambda _c, _p, ch, _pl: heard.update([ch]))
    try:
        await asyncio.sleep(STATS_SETTLE_S)
        s0, heard0 = await _stats(db), Counter(heard)
        await asyncio.sleep(STATS_SETTLE_S)  # idle: lease renewals and the like
        s1, heard1 = await _stats(db), Counter(heard)
        t1 = time.monotonic()
        sender = asyncio.create_task(asyncio.to_thread(create_tasks, url, bearer, k, 16, FIELDS))
        polls = await _wait_ended(db, s1["ended"] + k)  # after the warm-up's
        await sender
        await asyncio.sleep(STATS_SETTLE_S)
        s2, heard2, t2 = await _stats(db), Counter(heard), time.monotonic()
    finally:
        await listener.close()
    # Each snapshot's own statement shows in the next one: the 1s below.
    idle_rate = (s1["commits"] - s0["commits"] - 1) / STATS_SETTLE_S
    background = idle_rate * (t2 - t1)
    task_commits = s2["commits"] - s1["commits"] - 1 - polls - background
    tables = _per_task(s1, s2, k)
    live = tables["live_tasks"]
    return {
        "tasks": k,
        "commits_per_task": round(task_commits / k, 2),
        "rollbacks": s2["rollbacks"] - s1["rollbacks"],
        "live_tasks_writes_per_task": round(live["inserts"] + live["updates"] + live["deletes"], 2),
        "events_per_task": tables["task_events"]["inserts"],
        # Heard on LISTEN; the idle window's rate taken off.
        "notifications_per_task": {
            ch: round((heard2[ch] - heard1[ch] - _rate(heard0, heard1, ch) * (t2 - t1)) / k, 2)
            for ch in CHANNELS
        },
        "idle_notifications_per_s": {
            ch: round(_rate(heard0, heard1, ch), 2) for ch in CHANNELS if heard1[ch] > heard0[ch]
        },
        "row_writes_per_task": tables,
        "raw": {
            "commits_during": s2["commits"] - s1["commits"],
            "idle_commits_per_s": round(idle_rate, 2),
            "background_subtracted": round(background, 1),
            "own_statements_subtracted": polls + 1,
        },
    }


def _rate(before: Counter[str], after: Counter[str], channel: str) -> float:
    return (after[channel] - before[channel]) / STATS_SETTLE_S


def statements_per_task() -> dict[str, Any]:
    bearer = token(uuid.uuid4())
    with stubs(transcribing=0.01) as ports, database("stm") as db:
        settings = {"capacity": 64, "data_dir": WORK / db, "instance_name": "A"}
        with service(db, **settings, **stub_env(ports)) as (url, _):
            wait_processes(db, 1)
            create_tasks(url, bearer, 3, 1, FIELDS)  # warm-up (before the first snapshot)
            result = uvloop.run(_statements(db, url, bearer, STATEMENT_TASKS))
    result["source"] = "pg_stat_database, pg_stat_user_tables (pg_stat_statements is not loaded)"
    result["notes"] = (
        "measured with the cluster machinery only: there is no switch to run without it, so"
        " no before figure. Commits = statements (the service runs in autocommit); the idle"
        " rate (lease renewals) and this script's own statements are subtracted."
    )
    return result


# -- the run ---------------------------------------------------------------------------------


def git_head() -> str:
    """The checkout's commit: read at the start and at the end, since instances started
    (or restarted) in between run whatever the working tree holds then."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip()


def machine_info() -> dict[str, Any]:
    info = machine()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    info.update(
        commit=git_head(),
        cpu_count=os.cpu_count(),
        load_avg_at_start=[round(x, 2) for x in os.getloadavg()],
        nofile=[soft, hard],
        postgres=sql("SHOW server_version"),
        max_connections=int(sql("SHOW max_connections")),
        pg_stat_statements="pg_stat_statements" in sql("SHOW shared_preload_libraries"),
    )
    return info


def _interrupted(_signum: int, _frame: object) -> None:
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process and drop
    # every database.
    raise KeyboardInterrupt


def main() -> None:
    raise_nofile()
    signal.signal(signal.SIGTERM, _interrupted)
    log(f"logs under {WORK}; quick={QUICK}")
    report: dict[str, Any] = {"machine": machine_info(), "quick": QUICK}
    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "failover_lock": lambda: failover("kill", KILLS, LOCK_LEASE_S) | {"target_p99_s": 3.0},
        "failover_lease": lambda: (
            failover("stop", PAUSES, PAUSE_LEASE_S) | {"target_max_s": PAUSE_LEASE_S + 1}
        ),
        "event_latency_idle": lambda: event_latency_idle() | {"target_p99_ms": 10.0},
        "fanout": lambda: fanout() | {"target_p99_ms": 150.0},
        "throughput": throughput,
        "statements_per_task": statements_per_task,
    }
    for name, scenario in scenarios.items():
        if not wanted(name):
            continue
        try:
            report[name] = scenario()
        except Exception as error:  # noqa: BLE001 - one scenario's failure is reported
            log(f"{name} failed: {error!r}; the logs are under {WORK}")
            report[name] = {"error": repr(error)}
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["commit_at_end"] = git_head()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
