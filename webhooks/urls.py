"""Which webhook URLs are acceptable: well-formed http(s), and not aimed inside the network.

A webhook makes this service send requests where a client says. Left open, that
reaches the database, a cloud's metadata address or an admin port on loopback
(server-side request forgery). So a host that is, or resolves to, an address that
is not globally routable is refused unless ``MANAGER_WEBHOOK_ALLOW_PRIVATE`` is set.
Checked twice: the literal URL at creation, the resolved addresses at each send.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

#: Longest URL accepted (the column's size).
MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(ValueError):
    """The URL is malformed, or aimed at an address webhooks may not reach."""


def check_url(raw: str, *, allow_private: bool) -> str:
    """The URL if it is plainly acceptable; RefusedUrl (a short reason) otherwise.

    Only what the text shows is checked here: a host name's addresses are checked
    when a delivery resolves it.
    """
    parts = _parts(raw)
    host = parts.hostname or ""
    if not allow_private:
        literal = literal_address(host)
        if literal is not None and not is_public(literal):
            raise RefusedUrl(f"webhook_url points at a non-public address ({literal})")
        name = host.rstrip(".")  # "localhost." is the same name, fully qualified
        if name == "localhost" or name.endswith(".localhost"):
            raise RefusedUrl("webhook_url points at this machine (localhost)")
    return raw


def _parts(raw: str) -> SplitResult:
    if len(raw) > MAX_URL_LENGTH:
        raise RefusedUrl(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    if not raw.isprintable() or " " in raw:
        raise RefusedUrl("webhook_url contains spaces or control characters")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  # raises on a port that is not a number in range
    except ValueError:
        raise RefusedUrl("webhook_url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("webhook_url must be an http:// or https:// URL")
    if not parts.hostname:
        raise RefusedUrl("webhook_url has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("webhook_url must not hold credentials; the signature authenticates")
    return parts


def literal_address(host: str) -> Address | None:
    """The address a host names literally (``10.0.0.1``, ``[::1]``), else None.

    The shorthand IPv4 forms resolvers also accept count (``127.1``, ``2130706433``,
    ``0x7f.0.0.1``, a trailing dot), so none of them passes for a host name.
    """
    bare = host.strip("[]").removesuffix(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


#: IPv6 prefixes that carry an IPv4 address to a translator or relay (6to4, NAT64 and its
#: local-use prefix): through them a request reaches whatever IPv4 address is inside.
_EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(prefix) for prefix in ("2002::/16", "64:ff9b::/96", "64:ff9b:1::/48")
)


def is_public(address: Address) -> bool:
    """Whether a webhook may go there without ALLOW_PRIVATE: globally routable unicast,
    and no IPv6 address that only carries an IPv4 one (6to4, NAT64), whatever is inside."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        elif any(address in prefix for prefix in _EMBEDDING_IPV4):
            return False
    return address.is_global and not address.is_multicast


def first_refused(addresses: Iterable[Address]) -> Address | None:
    """The first address a delivery may not reach, or None when all are public."""
    return next((a for a in addresses if not is_public(a)), None)
