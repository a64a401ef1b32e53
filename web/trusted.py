"""Trusted networks: who may send a user id the service takes on trust.

``gateway`` auth mode and the ILPS legacy routes believe the user id in the request;
that is safe only when the request comes from the authenticating gateway. The peer
is the TCP peer (``scope["client"]``), never a forwarded header anyone can set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import ApiError, error_response

log = logging.getLogger(__name__)

Network = IPv4Network | IPv6Network

#: Loopback and the private ranges: a docker-compose network or a LAN gateway works as is.
DEFAULT_TRUSTED_NETWORKS = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (``10.0.0.0/8, ::1/128``); ValueError names a bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError as error:
            raise ValueError(f"{item!r} is not a network in CIDR notation ({error})") from None
    return tuple(networks)


def _peer_address(client: object) -> IPv4Address | IPv6Address | None:
    if not isinstance(client, tuple | list) or not client:
        return None
    try:
        address = ip_address(str(client[0]))
    except ValueError:
        return None  # a Unix socket path, or a test client's made-up name
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # an IPv4 peer on a dual-stack socket
    return address


class TrustedNetworks:
    """The networks whose peers may assert a user id."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def __str__(self) -> str:
        return ", ".join(str(network) for network in self.networks) or "none"

    def admits(self, scope: Scope) -> bool:
        address = _peer_address(scope.get("client"))
        return address is not None and any(address in network for network in self.networks)

    def check(self, scope: Scope) -> None:
        """Raise the 403 unless the request's TCP peer is in a trusted network."""
        if not self.admits(scope):
            peer = scope.get("client")
            log.info("refused a trusted-identity request from %s (not trusted)", peer)
            raise ApiError(
                403,
                "this route accepts requests only from the trusted networks "
                "(MANAGER_TRUSTED_NETWORKS), and this peer is not in them",
                code="forbidden",
            )


class TrustedPeersOnly:
    """ASGI middleware around a route: peers outside the trusted networks get the 403."""

    def __init__(self, app: ASGIApp, trusted: TrustedNetworks) -> None:
        self._app = app
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._trusted.check(scope)
        except ApiError as error:
            await error_response(error)(scope, receive, send)
            return
        await self._app(scope, receive, send)
