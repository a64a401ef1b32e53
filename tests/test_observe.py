"""What the supervisor reports: restarts, give-ups, recoveries, outages, timeouts, live gauges.

A MemoryJournal and scripted stages on asyncio and trio; the metrics are read from
prometheus_client's registry before and after, the lines from the ``ops.lifecycle`` logger.
"""

from __future__ import annotations

import logging
from uuid import UUID

import anyio
import pytest
from prometheus_client import REGISTRY

from supervisor.events import Change, EventType
from supervisor.lifecycle import TERMINAL, Status
from tests.fakes import (
    Block,
    Engine,
    MemoryJournal,
    anyio_backend,  # noqa: F401
    drain,
    make_supervisor,
    reached,
    running,
    wait_until,
)

pytestmark = pytest.mark.anyio
LIMIT = 5


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def messages(caplog: pytest.LogCaptureFixture, task: UUID) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ops.lifecycle" and getattr(r, "task_id", None) == task
    ]


def crashed() -> float:
    """Tasks failed as crashed, in whatever status the crash found them (the worker runs
    ahead of its actor's writes)."""
    stages = ("preprocessing", "transcribing")
    return sum(sample("stm_task_failures_total", stage=s, **{"class": "crashed"}) for s in stages)


def terminal(journal: MemoryJournal, task: UUID) -> bool:
    return journal.status(task) in TERMINAL


async def test_a_restart_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ops.lifecycle")
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", RuntimeError("boom"))
    restarts = sample("stm_actor_restarts_total")
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is Status.COMPLETED
    assert sample("stm_actor_restarts_total") - restarts == 1
    assert "actor restarted after a crash" in messages(caplog, task)


async def test_a_task_given_up_after_its_restarts_fails_as_crashed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ops.lifecycle")
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", *[RuntimeError(f"boom {n}") for n in range(2)])
    before = crashed()
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine, max_restarts=1)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await wait_until(journal, lambda: terminal(journal, task))
    assert journal.status(task) is Status.FAILED
    assert crashed() - before == 1
    assert messages(caplog, task)[-1].startswith("task failed: the task failed unexpectedly")


async def test_a_stage_that_keeps_timing_out_fails_as_timed_out() -> None:
    journal, engine = MemoryJournal(), Engine()
    engine.plan("transcribe", b"t", Block(), Block())  # never released
    timed_out = {"stage": "transcribing", "class": "timed_out"}
    before = sample("stm_task_failures_total", **timed_out)
    retries = sample("stm_stage_retries_total", stage="transcribing")
    supervisor = make_supervisor(journal, engine, stage_attempts=2, stage_timeout=0.01)
    with anyio.fail_after(LIMIT):
        async with running(supervisor) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await drain(await door.follow(task))
    assert sample("stm_task_failures_total", **timed_out) - before == 1
    assert sample("stm_stage_retries_total", stage="transcribing") - retries == 1


async def test_recovery_at_start_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ops.lifecycle")
    journal, engine = MemoryJournal(), Engine()
    task = journal.add_task(b"t")
    await journal.append(task, 1, Change(EventType.STATUS, Status.QUEUED))
    recoveries = sample("stm_recoveries_total")
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)):
            await wait_until(journal, lambda: terminal(journal, task))
    assert sample("stm_recoveries_total") - recoveries == 1
    assert messages(caplog, task)[0] == "task recovered at start"


async def test_an_outage_counts_once_and_the_live_gauges_come_back_down() -> None:
    journal, engine = MemoryJournal(), Engine()
    hold = Block()
    engine.plan("preprocess", b"t", hold)
    outages = sample("stm_journal_outages_total")
    live = sample("stm_actors_live")
    with anyio.fail_after(LIMIT):
        async with running(make_supervisor(journal, engine)) as door:
            task = journal.add_task(b"t")
            await door.start(task)
            await hold.entered.wait()
            await reached(journal, task, Status.PREPROCESSING)
            assert sample("stm_actors_live") - live == 1
            journal.fail_appends(3)  # one outage, three failed writes
            hold.release.set()
            await wait_until(journal, lambda: terminal(journal, task))
    assert sample("stm_journal_outages_total") - outages == 1
    assert sample("stm_actors_live") == live
    assert sample("stm_queue_depth") == 0
