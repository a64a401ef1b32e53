"""Chaos (slow): lost replies on every kind of write, through a fault proxy between
the instance and PostgreSQL. Every task ends terminal exactly once, no stage runs
twice, and every stream ends at the true end. ILPS stubs, not the real recogniser,
so it stays within a minute or two on two cores."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from supervisor.events import EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.cluster_helpers import follow_to_the_end, journal_of, submit, wait_until
from tests.fakes import assert_valid_history
from tests.fault_helpers import ilps_stubs
from tests.fault_proxy import FaultProxy
from tests.service_helpers import auth
from tests.test_cluster_faults import POOL, behind, bound, database, proxy  # noqa: F401

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
