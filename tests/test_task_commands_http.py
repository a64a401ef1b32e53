"""Task commands through the real service: retried streams, deletion, queue positions."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL

from tests.ilps_helpers import read_whole
from tests.service_helpers import auth, create, iter_sse, read_stream, repeat_wav, running_service

pytestmark = pytest.mark.anyio


async def test_a_retried_tasks_stream_ends_at_its_current_end_not_an_earlier_attempts(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        task = (await create(svc.client, user, speech_clip)).json()
        path = f"/tasks/{task['id']}"
        assert (await svc.client.post(f"{path}/cancel", headers=auth(user))).status_code == 202
        retried = await svc.client.post(f"{path}/retry", headers=auth(user))
        assert retried.status_code == 202, retried.text
        with anyio.fail_after(60):
            events = await read_stream(svc.client, f"{path}/events", auth(user))
        statuses = [e.data["status"] for e in events if e.event == "status"]
        assert statuses.count("cancelled") == 1  # the first attempt's end passed through
        assert statuses[-1] == "completed"  # and the stream ended at the current one
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        cancelled_seq = next(e.id for e in events if e.data["status"] == "cancelled")
        assert cancelled_seq is not None

        with anyio.fail_after(30):
            legacy = await read_whole(svc.client, user, task["id"])
            resumed = await read_whole(svc.client, user, task["id"], cancelled_seq - 1)
        assert legacy.statuses == ["completed"]  # the current status, and the end
        assert resumed.statuses[0] == "failed"  # the cancel, as the contract shows it
        assert resumed.statuses[-1] == "completed"


async def test_deleting_a_running_task_ends_its_stream_with_a_last_word(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = repeat_wav(speech_clip, 8)
    async with running_service(service_database_url, tmp_path) as svc:
        task = (await create(svc.client, user, long_clip)).json()
        path = f"/tasks/{task['id']}"
        async with svc.client.stream("GET", f"{path}/events", headers=auth(user)) as response:
            events = iter_sse(response)
            with anyio.fail_after(60):
                async for event in events:
                    if event.data["status"] == "preprocessing":
                        break
            deleted = await svc.client.delete(path, headers=auth(user))
            assert deleted.status_code == 204
            with anyio.fail_after(10):
                rest = [event async for event in events]
        assert rest[-1].event == "deleted"
        assert rest[-1].id is None  # not an event of the journal: nothing to resume from
        assert rest[-1].data == {"task_id": task["id"]}
        again = await svc.client.get(f"{path}/events", headers=auth(user))
        assert again.status_code == 404


async def test_a_queued_task_shows_its_current_place_in_the_queue(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = repeat_wav(speech_clip, 8)
    async with running_service(service_database_url, tmp_path, capacity=1) as svc:
        first, second, third = [
            (await create(svc.client, user, long_clip, title=name)).json()
            for name in ("first", "second", "third")
        ]

        async def place(task: dict[str, str]) -> int | None:
            answer = await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))
            position: int | None = answer.json()["queue_position"]
            return position

        async def queued(task: dict[str, str]) -> None:
            path = f"/tasks/{task['id']}/events"
            async with svc.client.stream("GET", path, headers=auth(user)) as response:
                async for event in iter_sse(response):
                    if event.data["status"] == "queued":
                        return

        with anyio.fail_after(30):  # the first holds the only slot for many seconds
            await queued(second)
            await queued(third)
            places = {name: await place(task) for name, task in (("2", second), ("3", third))}
            assert sorted(places.values()) == [1, 2]  # type: ignore[type-var]
            ahead, behind = (second, third) if places["2"] == 1 else (third, second)
            path = f"/tasks/{behind['id']}/events"
            async with svc.client.stream("GET", path, headers=auth(user)) as response:
                events = iter_sse(response)
                async for event in events:
                    if event.event == "status" and event.data["status"] == "queued":
                        # The journal's place agrees with what GET said.
                        assert event.data["payload"] == {"position": 2}
                        break
                now = await anext(events)  # then where it stands now
                assert (now.event, now.id, now.data["position"]) == ("position", None, 2)
                cancel = await svc.client.post(f"/tasks/{ahead['id']}/cancel", headers=auth(user))
                assert cancel.status_code == 202
                moved = await anext(events)  # told as it moves up, without an id to resume
                assert (moved.event, moved.id) == ("position", None)
                assert moved.data == {"task_id": behind["id"], "status": "queued", "position": 1}
            assert await place(behind) == 1
        assert await place(first) is None
        for task in (first, behind):
            await svc.client.post(f"/tasks/{task['id']}/cancel", headers=auth(user))


async def test_a_task_no_instance_has_room_for_shows_its_place_in_the_cluster_queue(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    long_clip = repeat_wav(speech_clip, 8)
    async with running_service(service_database_url, tmp_path, capacity=1, claim_limit=1) as svc:
        first, second, third = [
            (await create(svc.client, user, long_clip, title=name)).json()
            for name in ("first", "second", "third")
        ]

        async def read(task: dict[str, str]) -> dict[str, object]:
            answer = await svc.client.get(f"/tasks/{task['id']}", headers=auth(user))
            body: dict[str, object] = answer.json()
            return body

        with anyio.fail_after(30):
            # The first is owned (and holds the slot); the others wait, unowned.
            assert (await read(second))["status"] == "created"
            assert [(await read(t))["queue_position"] for t in (second, third)] == [1, 2]
            cancel = await svc.client.post(f"/tasks/{second['id']}/cancel", headers=auth(user))
            assert cancel.status_code == 202  # nobody owned it: cancelled where it waited
            assert (await read(third))["queue_position"] == 1
            done = await svc.client.post(f"/tasks/{first['id']}/cancel", headers=auth(user))
            assert done.status_code == 202
            path = f"/tasks/{third['id']}/events"
            async with svc.client.stream("GET", path, headers=auth(user)) as response:
                async for event in iter_sse(response):
                    if event.data["status"] == "started":
                        break  # claimed once the first left room
            assert (await read(third))["queue_position"] is None
