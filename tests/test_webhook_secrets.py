"""Each user's own webhook secret: made and rotated through the API, shown once, signing
only that user's deliveries; during a rotation's overlap both secrets sign (verified with
the independent ``standardwebhooks`` implementation)."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from sqlalchemy import URL
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.service_helpers import auth
from tests.test_webhooks import SECRET, _failed_task, service_with_hooks
from tests.webhook_helpers import receiver_running

pytestmark = pytest.mark.anyio


async def test_a_users_secret_signs_their_deliveries_and_no_one_elses(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    other = uuid.uuid4()
    with receiver_running() as mine, receiver_running() as theirs, receiver_running() as wide:
        async with service_with_hooks(service_database_url, tmp_path, webhook_url=wide.url) as (
            running,
            attempts,
        ):
            made = await running.client.post("/webhook-secret", headers=auth(user))
            assert made.status_code == 201, made.text
            assert made.headers["cache-control"] == "no-store"
            secret = made.json()["secret"]
            assert secret.startswith("whsec_")
            assert made.json()["previous_valid_until"] is None
            other_secret = (
                await running.client.post("/webhook-secret", headers=auth(other))
            ).json()["secret"]
            await _failed_task(running, user, webhook_url=mine.url)
            got = await mine.anext()
            await _failed_task(running, other, webhook_url=theirs.url)
            got_theirs = await theirs.anext()
            service_wide = await wide.anext()
            with anyio.fail_after(30):
                for _ in range(4):
                    await attempts.receive()
    assert Webhook(secret).verify(got.body, got.headers)["data"]["user_id"] == str(user)
    for wrong in (SECRET, other_secret):
        with pytest.raises(WebhookVerificationError):
            Webhook(wrong).verify(got.body, got.headers)
    assert Webhook(other_secret).verify(got_theirs.body, got_theirs.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got_theirs.body, got_theirs.headers)
    # MANAGER_WEBHOOK_SECRET still signs the service-wide URL's deliveries.
    assert Webhook(SECRET).verify(service_wide.body, service_wide.headers)


async def test_a_rotation_signs_with_both_secrets_during_its_overlap(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    with receiver_running() as receiver:
        async with service_with_hooks(service_database_url, tmp_path) as (running, attempts):
            old = (await running.client.post("/webhook-secret", headers=auth(user))).json()
            rotated = await running.client.post(
                "/webhook-secret", headers=auth(user), json={"overlap_seconds": 3600}
            )
            assert rotated.status_code == 201
            new = rotated.json()
            assert new["secret"] != old["secret"]
            assert new["previous_valid_until"] is not None
            await _failed_task(running, user, webhook_url=receiver.url)
            during = await receiver.anext()
            with anyio.fail_after(30):
                await attempts.receive()
            # A rotation with no overlap: the secret it replaces stops signing at once.
            latest = (
                await running.client.post(
                    "/webhook-secret", headers=auth(user), json={"overlap_seconds": 0}
                )
            ).json()
            await _failed_task(running, user, webhook_url=receiver.url)
            after = await receiver.anext()
            with anyio.fail_after(30):
                await attempts.receive()
            refused = await running.client.post(
                "/webhook-secret", headers=auth(user), json={"overlap_seconds": -1}
            )
    assert refused.status_code == 422
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in during.headers["webhook-signature"].split())
    for secret in (old["secret"], new["secret"]):
        assert Webhook(secret).verify(during.body, during.headers)
    # The first secret's own hour of overlap runs on; the second's ended at once.
    assert len(after.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(latest["secret"]).verify(after.body, after.headers)
    assert Webhook(old["secret"]).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new["secret"]).verify(after.body, after.headers)
