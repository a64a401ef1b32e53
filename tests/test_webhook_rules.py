"""Webhook URLs, signatures and the delivery-time address check, without a service."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from standardwebhooks import Webhook

from store.deliveries import REFUSED, Due
from tests.webhook_helpers import receiver_running
from webhooks.delivery import Sender, message
from webhooks.signing import new_secret, secret_key, signature
from webhooks.urls import Address, RefusedUrl, check_url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "http:///hook",
        "http://user:pw@example.com/hook",
        "http://example.com:99999/hook",
        "http://exa mple.com/hook",
        "http://example.com/\x00",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_plainly_bad_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(RefusedUrl):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8064/hook",
        "http://api.localhost/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f.0.0.1/hook",
        "http://127.0.0.1./hook",
        "http://localhost./hook",
        "http://LOCALHOST../hook",
        "http://api.localhost./hook",
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
        "http://[2002:5db8:d822::1]/hook",  # 6to4 of a public address: a relay all the same
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "http://[64:ff9b:1::a00:1]/hook",  # the local-use NAT64 prefix
    ],
)
def test_private_literal_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(RefusedUrl):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url


def test_public_webhook_urls_are_accepted() -> None:
    for url in ("https://hooks.example.com/task?x=1", "http://93.184.216.34:8080/hook"):
        assert check_url(url, allow_private=False) == url


def test_signature_verifies_with_the_standardwebhooks_package() -> None:
    secret = new_secret()
    stamp = int(datetime.now(UTC).timestamp())
    body = b'{"type":"task.completed"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret_key(secret), "msg_1", stamp, body),
    }
    assert Webhook(secret).verify(body, headers) == {"type": "task.completed"}


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_c2hvcnQ=", ""])
def test_a_secret_that_is_not_whsec_base64_of_16_bytes_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="MANAGER_WEBHOOK_SECRET"):
        secret_key(secret)


def _due(url: str) -> Due:
    return Due(
        id=uuid.uuid4(),
        task_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        url=url,
        event_type="task.completed",
        task_status="completed",
        occurred_at=datetime.now(UTC),
        attempts=0,
        step=0,
    )


@pytest.mark.anyio
async def test_a_host_that_resolves_to_a_private_address_is_refused_at_delivery() -> None:
    async def to_loopback(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("127.0.0.1")]

    with receiver_running() as receiver:
        sender = Sender(
            None,  # type: ignore[arg-type]  # attempt() does not touch the store
            key=secret_key(new_secret()),
            task_url_base="http://tasks.example",
            timeout=5,
            allow_private=False,
            resolver=to_loopback,
        )
        due = _due(f"http://receiver.example:{receiver.port}/hook")
        async with httpx.AsyncClient() as client:
            outcome = await sender.attempt(client, due)
        assert outcome.state == REFUSED
        assert outcome.error is not None
        assert "127.0.0.1" in outcome.error
        assert outcome.delay is None
        assert receiver.nothing_more()


def test_the_payload_is_thin_type_timestamp_and_the_task() -> None:
    due = _due("https://hooks.example/x")
    body = message(due, "https://tasks.example")
    import json

    payload = json.loads(body)
    assert payload["type"] == "task.completed"
    assert payload["timestamp"].endswith("Z")
    assert payload["data"] == {
        "task_id": str(due.task_id),
        "user_id": str(due.user_id),
        "status": "completed",
        "url": f"https://tasks.example/tasks/{due.task_id}",
    }


@pytest.mark.anyio
async def test_a_checked_host_is_connected_to_at_the_address_that_was_checked() -> None:
    async def to_public(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("93.184.216.34")]

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204, stream=httpx.ByteStream(b""))  # as a network answer

    sender = Sender(
        None,  # type: ignore[arg-type]  # attempt() does not touch the store
        key=secret_key(new_secret()),
        task_url_base="http://tasks.example",
        timeout=5,
        allow_private=False,
        resolver=to_public,
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await sender.attempt(client, _due("https://hooks.example:8443/in?k=1"))
    assert outcome.state == "delivered"
    [request] = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?k=1"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("step", "state", "delay"),
    [(0, "pending", 5.0), (1, "pending", 300.0), (6, "pending", 36000.0), (7, "failed", None)],
)
async def test_a_failed_attempt_waits_as_svix_schedules_then_gives_up(
    step: int, state: str, delay: float | None
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, stream=httpx.ByteStream(b"no"))

    sender = Sender(
        None,  # type: ignore[arg-type]  # attempt() does not touch the store
        key=secret_key(new_secret()),
        task_url_base="http://tasks.example",
        timeout=5,
        allow_private=True,
        retry_scale=0.5,
    )
    due = replace(_due("https://hooks.example/in"), step=step)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await sender.attempt(client, due)
    assert (outcome.state, outcome.status_code) == (state, 500)
    assert outcome.delay == (None if delay is None else delay * 0.5)


@pytest.mark.anyio
async def test_a_resolver_that_hangs_is_cut_off_by_the_delivery_deadline() -> None:
    """The lookup counts against the attempt's timeout: a slow resolver must not outlast
    the claim's lease (then another round would send the delivery again)."""
    started = anyio.Event()

    async def hangs(host: str, port: int) -> list[Address]:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    sender = Sender(
        None,  # type: ignore[arg-type]  # attempt() does not touch the store
        key=secret_key(new_secret()),
        task_url_base="http://tasks.example",
        timeout=0.2,
        allow_private=False,
        resolver=hangs,
    )
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(10):
            outcome = await sender.attempt(client, _due("http://slow.example/hook"))
    assert started.is_set()
    assert outcome.state == "pending"
    assert outcome.error == "timed out resolving the host name"
