"""Engine slots: at most N tasks at once, the rest wait first in, first out."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from supervisor.slots import EngineSlots, Ticket
from tests.fakes import anyio_backend  # noqa: F401


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EngineSlots(0)


@pytest.mark.anyio
async def test_free_slots_are_granted_at_once_with_position_zero() -> None:
    slots = EngineSlots(2)
    one, two = slots.enqueue(), slots.enqueue()
    assert (one.granted, two.granted) == (True, True)
    assert (one.position, two.position) == (0, 0)
    with anyio.fail_after(1):
        await one.wait()
    assert slots.waiting == 0


@pytest.mark.anyio
async def test_waiting_tickets_get_positions_in_line_and_are_granted_in_order() -> None:
    slots = EngineSlots(1)
    tickets = [slots.enqueue() for _ in range(4)]
    assert [t.position for t in tickets] == [0, 1, 2, 3]
    assert [t.granted for t in tickets] == [True, False, False, False]
    assert slots.waiting == 3
    for i, ticket in enumerate(tickets):
        assert [t.granted for t in tickets] == [j <= i for j in range(4)]
        ticket.release()
    assert slots.waiting == 0
    assert slots.enqueue().granted  # every slot came back


@pytest.mark.anyio
async def test_releasing_a_waiting_ticket_leaves_the_line() -> None:
    slots = EngineSlots(1)
    holder, leaver, next_ = slots.enqueue(), slots.enqueue(), slots.enqueue()
    leaver.release()
    leaver.release()  # idempotent
    assert slots.waiting == 1
    holder.release()
    assert next_.granted
    assert not leaver.granted
    next_.release()
    assert slots.enqueue().granted


@pytest.mark.anyio
async def test_release_twice_frees_one_slot() -> None:
    slots = EngineSlots(1)
    ticket = slots.enqueue()
    ticket.release()
    ticket.release()
    first, second = slots.enqueue(), slots.enqueue()
    assert first.granted
    assert not second.granted


@pytest.mark.anyio
async def test_capacity_is_respected_under_many_tickets_in_fifo_order() -> None:
    capacity, tasks = 3, 40
    slots = EngineSlots(capacity)
    go = anyio.Event()
    running = peak = 0
    tickets: list[Ticket] = []
    joined: list[int] = []  # each ticket's place when it joined

    async def work(n: int, queued: anyio.Event) -> None:
        nonlocal running, peak
        ticket = slots.enqueue()
        tickets.append(ticket)
        joined.append(ticket.position)
        queued.set()
        try:
            await ticket.wait()
            # first in, first out: everyone who joined earlier got a slot before
            assert all(t.granted for t in tickets[:n])
            running += 1
            peak = max(peak, running)
            await go.wait()
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            running -= 1
        finally:
            ticket.release()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for n in range(tasks):
                queued = anyio.Event()
                group.start_soon(work, n, queued)
                await queued.wait()  # join the line in the order 0, 1, 2...
            await anyio.wait_all_tasks_blocked()
            assert (running, slots.waiting) == (capacity, tasks - capacity)
            go.set()
    assert peak == capacity
    assert joined == [0] * capacity + list(range(1, tasks - capacity + 1))
    assert [t.position for t in tickets] == [0] * tasks  # each held a slot in the end
    assert slots.waiting == 0


@pytest.mark.anyio
async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    slots = EngineSlots(1)
    holder = slots.enqueue()

    async def wait_in_line() -> None:
        ticket = slots.enqueue()
        try:
            await ticket.wait()
        finally:
            ticket.release()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(wait_in_line)
            await anyio.wait_all_tasks_blocked()
            assert slots.waiting == 1
            group.cancel_scope.cancel()
    assert slots.waiting == 0
    holder.release()
    assert slots.enqueue().granted


def test_places_are_kept_current_and_each_waiter_is_told_when_it_moves_up() -> None:
    slots = EngineSlots(1)
    holder = slots.enqueue("running")
    line = [slots.enqueue(name) for name in "abcd"]
    told: dict[str, list[int]] = {name: [] for name in "abcd"}
    for name, ticket in zip("abcd", line, strict=True):
        ticket.on_move = told[name].append
    assert [slots.position(name) for name in ["running", *"abcd"]] == [0, 1, 2, 3, 4]

    line[1].release()  # "b" leaves the line: only those behind it move
    assert told == {"a": [], "b": [], "c": [2], "d": [3]}
    assert [slots.position(name) for name in "abcd"] == [1, None, 2, 3]

    holder.release()  # "a" is granted (its status says so), the rest move up
    assert told == {"a": [], "b": [], "c": [2, 1], "d": [3, 2]}
    assert (line[0].granted, slots.position("a"), slots.position("running")) == (True, 0, None)
    assert [line[2].position, line[3].position] == [1, 2]


def test_a_new_ticket_of_the_same_owner_is_the_one_whose_place_is_told() -> None:
    slots = EngineSlots(1)
    slots.enqueue("other")
    first = slots.enqueue("task")
    first.release()
    again = slots.enqueue("task")
    assert slots.position("task") == again.position == 1
