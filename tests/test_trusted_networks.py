"""Trusted-identity requests (gateway mode, ILPS routes) only from MANAGER_TRUSTED_NETWORKS.

Tests reach the service over loopback only, so "an untrusted peer" is loopback with
the trusted networks configured to leave it out.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from tests.service_helpers import running_service
from web.settings import Settings
from web.trusted import DEFAULT_TRUSTED_NETWORKS, TrustedNetworks, parse_networks

pytestmark = pytest.mark.anyio

NOT_LOOPBACK = "10.0.0.0/8,192.168.0.0/16"


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden"
    assert body["detail"].startswith("this route accepts requests only from the trusted networks")


async def test_gateway_header_from_an_untrusted_peer_is_refused(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(
        service_database_url, tmp_path, auth_mode="gateway", trusted_networks=NOT_LOOPBACK
    ) as svc:
        client = svc.client
        assert_refused(await client.get("/tasks", headers={"X-User-Id": str(user)}))
        assert_refused(await client.get("/tasks"))  # refused before the header is looked at
        # A forwarded-for header is anyone's to set: it changes nothing.
        forged = {"X-User-Id": str(user), "X-Forwarded-For": "10.1.2.3"}
        assert_refused(await client.get("/tasks", headers=forged))
        assert (await client.get("/healthz")).status_code == 200  # takes no identity


async def test_gateway_header_from_loopback_is_accepted_by_default(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path, auth_mode="gateway") as svc:
        listed = await svc.client.get("/tasks", headers={"X-User-Id": str(user)})
        assert listed.status_code == 200, listed.text


async def test_ilps_routes_from_an_untrusted_peer_are_refused(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(
        service_database_url, tmp_path, ilps_compat=True, trusted_networks=NOT_LOOPBACK
    ) as svc:
        client = svc.client
        body = {"user_id": str(user)}
        assert_refused(await client.post("/", json=body))
        assert_refused(await client.post(f"/{uuid.uuid4()}", json=body))
        assert_refused(await client.post(f"/{uuid.uuid4()}/stream", json=body))
        upload = {"file": ("a.pcm", b"\0" * 4096, "application/octet-stream")}
        refused = await client.post("/transcribe", data=body, files=upload)
        assert_refused(refused)
        assert (await client.post("/", json=body)).status_code == 403
        assert (await client.get("/health")).status_code == 200  # takes no identity
        # The native routes still go by the bearer token, from anywhere.
        assert (await client.get("/tasks")).status_code == 401


async def test_ilps_routes_from_loopback_are_accepted_by_default(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(service_database_url, tmp_path, ilps_compat=True) as svc:
        listed = await svc.client.post("/", json={"user_id": str(user)})
        assert listed.status_code == 200, listed.text
        assert listed.json() == []


def test_default_trusts_loopback_and_the_private_ranges_only() -> None:
    trusted = TrustedNetworks(parse_networks(DEFAULT_TRUSTED_NETWORKS))
    for peer in ("127.0.0.1", "::1", "10.2.3.4", "172.20.0.5", "192.168.1.9", "fd00::5"):
        assert trusted.admits({"client": (peer, 5000)}), peer
    for peer in ("8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8", "testclient"):
        assert not trusted.admits({"client": (peer, 5000)}), peer
    assert trusted.admits({"client": ("::ffff:10.0.0.7", 5000)})  # IPv4 on a dual-stack socket
    assert not trusted.admits({"client": None})


def test_a_bad_network_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="'10.0.0.300/8' is not a network in CIDR notation"):
        Settings(_env_file=None, trusted_networks="127.0.0.0/8, 10.0.0.300/8")
