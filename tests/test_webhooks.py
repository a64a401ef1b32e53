"""Completion webhooks through the real service: real uvicorn, PostgreSQL and a real receiver."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import URL
from standardwebhooks import Webhook

from store.deliveries import Due, Outcome
from tests.metrics_helpers import moved, scrape
from tests.service_helpers import Running, auth, create, running_service
from tests.webhook_helpers import HANG, receiver_running, silent_wav
from webhooks.signing import new_secret

pytestmark = pytest.mark.anyio

SECRET = new_secret()


@asynccontextmanager
async def service_with_hooks(
    url: URL, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[Running, anyio.abc.ObjectReceiveStream[tuple[Due, Outcome]]]]:
    """The service, its webhook retries compressed, and every logged attempt as it happens."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_allow_private": True,  # the receiver is on loopback
        "webhook_retry_scale": 0.001,  # 5 s, 5 min... become 5 ms, 300 ms...
        "webhook_timeout_seconds": 10,
        **overrides,
    }
    send, attempts = anyio.create_memory_object_stream[tuple[Due, Outcome]](100)
    with send, attempts:
        async with running_service(url, data_dir, **values) as running:
            sender = running.service.sender
            counted = sender.attempted  # the metrics' hook, kept

            def attempted(due: Due, outcome: Outcome) -> None:
                counted(due, outcome)
                send.send_nowait((due, outcome))

            sender.attempted = attempted
            yield running, attempts


async def _failed_task(running: Running, user: uuid.UUID, webhook_url: str | None = None) -> str:
    if webhook_url is None:
        created = await create(running.client, user, silent_wav())
    else:
        created = await create(running.client, user, silent_wav(), webhook_url=webhook_url)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _deliveries(running: Running, user: uuid.UUID, task_id: str) -> list[dict[str, Any]]:
    listed = await running.client.get(f"/tasks/{task_id}/deliveries", headers=auth(user))
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def test_a_task_that_ends_sends_a_signed_thin_webhook_to_its_url(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running() as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            before = await scrape(running.client)
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            got = await receiver.anext()
            with anyio.fail_after(30):
                due, outcome = await attempts.receive()
            assert outcome.state == "delivered"
            deliveries = await _deliveries(running, user, task_id)
            after = await scrape(running.client)
    assert moved(before, after, "stm_webhook_attempts_total", state="delivered") == 1
    assert moved(before, after, "stm_webhook_attempt_seconds_count") == 1
    payload = Webhook(SECRET).verify(got.body, got.headers)  # the independent implementation
    assert payload["type"] == "task.failed"
    assert payload["data"]["task_id"] == task_id
    assert payload["data"]["user_id"] == str(user)
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["url"] == f"{running.service.url}/tasks/{task_id}"
    assert got.headers["webhook-id"] == str(due.id)
    assert got.path == "/hook"
    [delivery] = deliveries
    assert delivery["id"] == str(due.id)
    assert delivery["state"] == "delivered"
    assert delivery["url"] == receiver.url
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert delivery["attempts"][0]["next_attempt_at"] is None


async def test_a_receiver_failing_twice_then_succeeding_gets_three_attempts_with_one_id(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running(answers=[500, 503]) as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            got = [await receiver.anext() for _ in range(3)]
            with anyio.fail_after(30):
                states = [(await attempts.receive())[1].state for _ in range(3)]
            deliveries = await _deliveries(running, user, task_id)
    assert states == ["pending", "pending", "delivered"]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for received in got:
        Webhook(SECRET).verify(received.body, received.headers)
    [delivery] = deliveries
    assert delivery["attempt_count"] == 3
    log = delivery["attempts"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["next_attempt_at"] is None for a in log] == [False, False, True]
    assert all(a["duration_ms"] >= 0 for a in log)
    assert receiver.nothing_more()


async def test_a_410_stops_every_retry_for_that_url(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running(answers=[410], then=500) as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            await receiver.anext()
            with anyio.fail_after(30):
                _, outcome = await attempts.receive()
            deliveries = await _deliveries(running, user, task_id)
    assert outcome.state == "gone"
    [delivery] = deliveries
    assert delivery["state"] == "gone"
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [410]
    assert receiver.nothing_more()


async def test_redeliver_sends_the_same_webhook_again_and_only_to_its_owner(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running() as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            first = await receiver.anext()
            with anyio.fail_after(30):
                await attempts.receive()
            [delivery] = await _deliveries(running, user, task_id)
            path = f"/tasks/{task_id}/deliveries/{delivery['id']}/redeliver"
            other = await running.client.post(path, headers=auth(uuid.uuid4()))
            unknown = await running.client.post(
                f"/tasks/{task_id}/deliveries/{uuid.uuid4()}/redeliver", headers=auth(user)
            )
            redone = await running.client.post(path, headers=auth(user))
            second = await receiver.anext()
            with anyio.fail_after(30):
                await attempts.receive()
            [after] = await _deliveries(running, user, task_id)
            foreign = await running.client.get(
                f"/tasks/{task_id}/deliveries", headers=auth(uuid.uuid4())
            )
    assert other.status_code == 404
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    assert foreign.status_code == 404
    assert redone.status_code == 202
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == delivery["id"]
    Webhook(SECRET).verify(second.body, second.headers)
    assert after["state"] == "delivered"
    assert after["attempt_count"] == 2


async def test_the_service_wide_url_gets_every_task_and_the_owner_does_not_see_it(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running() as own, receiver_running() as operator:
        async with service_with_hooks(service_database_url, tmp_path, webhook_url=operator.url) as (
            running,
            attempts,
        ):
            with_url = await _failed_task(running, user, webhook_url=own.url)
            without = await _failed_task(running, user)
            received = {json.loads((await operator.anext()).body)["data"]["task_id"]}
            received.add(json.loads((await operator.anext()).body)["data"]["task_id"])
            own_got = await own.anext()
            with anyio.fail_after(30):
                for _ in range(3):
                    await attempts.receive()
            listed = await _deliveries(running, user, with_url)
    assert received == {with_url, without}
    assert json.loads(own_got.body)["data"]["task_id"] == with_url
    assert sorted(d["url"] or "" for d in listed) == ["", own.url]  # the operator's is hidden
    assert own.nothing_more()
    assert operator.nothing_more()


async def test_every_status_change_is_sent_when_asked(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running() as receiver:
        async with service_with_hooks(
            service_database_url, tmp_path, webhook_every_status=True
        ) as (running, attempts):
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            types: list[str] = []
            while not types or types[-1] != "task.failed":
                types.append(json.loads((await receiver.anext()).body)["type"])
            await running.client.get(f"/tasks/{task_id}", headers=auth(user))
    assert types[0] != "task.failed"
    assert "task.preprocessing" in types


def _loopback_name() -> str:
    """A host name (not ``localhost``) that resolves to a non-public address here."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"{name} does not resolve")
    if not (address.startswith("127.") or address.startswith(("10.", "192.168."))):
        pytest.skip(f"{name} resolves to {address}, a public address")
    return name


async def test_a_host_resolving_to_a_private_address_is_refused_at_delivery_and_logged(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    name = _loopback_name()
    with receiver_running() as receiver:
        async with service_with_hooks(
            service_database_url, tmp_path, webhook_allow_private=False
        ) as (running, attempts):
            task_id = await _failed_task(
                running, user, webhook_url=f"http://{name}:{receiver.port}/hook"
            )
            with anyio.fail_after(30):
                _, outcome = await attempts.receive()
            [delivery] = await _deliveries(running, user, task_id)
    assert outcome.state == "refused"
    assert delivery["state"] == "refused"
    assert delivery["next_attempt_at"] is None
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] is None
    assert "refused" in attempt["error"]
    assert receiver.nothing_more()


@pytest.mark.parametrize(
    ("webhook_url", "mentions"),
    [
        ("ftp://example.com/hook", "http"),
        ("http://127.0.0.1:9/hook", "non-public"),
        ("http://localhost/hook", "localhost"),
        ("http://10.0.0.7/hook", "non-public"),
        ("https://example.com/" + "x" * 3000, "2048"),
    ],
)
async def test_a_bad_or_private_webhook_url_is_a_422_and_nothing_is_written(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, webhook_url: str, mentions: str
) -> None:
    async with running_service(service_database_url, tmp_path) as running:
        answer = await create(running.client, user, silent_wav(), webhook_url=webhook_url)
        listed = await running.client.get("/tasks", headers=auth(user))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid"
    assert mentions in answer.json()["detail"]
    assert listed.json()["items"] == []


async def test_a_private_webhook_url_is_accepted_when_allowed(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(
        service_database_url, tmp_path, webhook_allow_private=True
    ) as running:
        answer = await create(
            running.client, user, silent_wav(), webhook_url="http://127.0.0.1:9/hook"
        )
    assert answer.status_code == 201
    assert answer.json()["webhook_url"] == "http://127.0.0.1:9/hook"


async def test_a_redeliver_while_an_attempt_is_in_flight_sends_once(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    """Before: the redelivery made the claimed delivery due again, and the loop sent it a
    second time while the first attempt was still on its way."""
    with receiver_running(answers=[HANG]) as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            task_id = await _failed_task(running, user, webhook_url=receiver.url)
            await receiver.anext()  # the first attempt, now hanging: claimed, in flight
            [delivery] = await _deliveries(running, user, task_id)
            path = f"/tasks/{task_id}/deliveries/{delivery['id']}/redeliver"
            redone = await running.client.post(path, headers=auth(user))
            [during] = await _deliveries(running, user, task_id)
            assert not receiver.arrived.qsize()
            receiver.released.set()
            with anyio.fail_after(30):
                _, outcome = await attempts.receive()
            [after] = await _deliveries(running, user, task_id)
    assert redone.status_code == 202
    # Still leased past now (twice the timeout, plus 5 s), not made due again.
    leased_until = datetime.fromisoformat(during["next_attempt_at"])
    assert leased_until > datetime.now(UTC) + timedelta(seconds=5)
    assert outcome.state == "pending"  # the hanging receiver closed without an answer
    assert after["attempt_count"] == 1
