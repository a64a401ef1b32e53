"""The latch: a one-shot flag, waited on by any number of tasks, on asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from supervisor.latch import Latch
from tests.fakes import anyio_backend  # noqa: F401

pytestmark = pytest.mark.anyio


async def test_a_latch_set_before_anyone_waits_returns_at_once() -> None:
    latch = Latch()
    latch.set()
    with anyio.fail_after(1):
        await latch.wait()
    assert latch.is_set()


async def test_every_waiter_wakes_when_it_is_set() -> None:
    latch, woken = Latch(), []

    async def waiter(name: int) -> None:
        await latch.wait()
        woken.append(name)

    with anyio.fail_after(1):
        async with anyio.create_task_group() as group:
            for name in range(3):
                group.start_soon(waiter, name)
            await anyio.wait_all_tasks_blocked()
            assert not latch.is_set()
            assert woken == []
            latch.set()
    assert sorted(woken) == [0, 1, 2]


async def test_waiting_is_cancellable() -> None:
    latch = Latch()
    with anyio.move_on_after(0.01) as scope:
        await latch.wait()
    assert scope.cancelled_caught
