"""Trusted-identity requests (gateway mode, ILPS routes) only from MANAGER_TRUSTED_NETWORKS.

Tests reach the service over loopback only, so "an untrusted peer" is loopback with
the trusted networks configured to leave it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import URL

from tests.service_helpers import running_service
from web.settings import Settings
from web.trusted import DEFAULT_TRUSTED_NETWORKS, TrustedNetworks, parse_networks

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent

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


async def test_gateway_header_from_a_configured_network_is_accepted(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID
) -> None:
    async with running_service(
        service_database_url, tmp_path, auth_mode="gateway", trusted_networks="127.0.0.0/8"
    ) as svc:
        listed = await svc.client.get("/tasks", headers={"X-User-Id": str(user)})
        assert listed.status_code == 200, listed.text


def test_gateway_mode_without_trusted_networks_refuses_to_start(tmp_path: Path) -> None:
    """The private ranges by default would let any container name any user (an operator)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANAGER_")}
    env |= {"MANAGER_AUTH_MODE": "gateway", "MANAGER_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error:")
    assert "MANAGER_TRUSTED_NETWORKS" in lines[0]
    with pytest.raises(ValidationError, match="MANAGER_TRUSTED_NETWORKS"):
        Settings(_env_file=None, auth_mode="gateway")
    assert Settings(_env_file=None, auth_mode="gateway", trusted_networks="10.0.0.5/32")


@pytest.mark.parametrize("allowed", [False, True])
async def test_a_gateway_identity_is_an_operator_only_where_the_setting_says(
    service_database_url: URL, tmp_path: Path, allowed: bool
) -> None:
    operator = uuid.uuid4()
    async with running_service(
        service_database_url,
        tmp_path,
        auth_mode="gateway",
        trusted_networks="127.0.0.0/8",
        admin_users=[operator],
        auth_gateway_operators=allowed,
    ) as svc:
        header = {"X-User-Id": str(operator)}
        overview = await svc.client.get("/admin/overview", headers=header)
        assert overview.status_code == (200 if allowed else 404)
        who = (await svc.client.get("/session", headers=header)).json()
        assert who["operator"] is allowed


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
