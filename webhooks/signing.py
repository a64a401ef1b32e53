"""Standard Webhooks signatures and the secret they are made with.

``webhook-signature`` is ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``,
keyed with the bytes a ``whsec_<base64>`` secret encodes (standardwebhooks.com).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from pathlib import Path

_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret holds; ValueError when it is not one."""
    encoded = secret.strip().removeprefix(_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("MANAGER_WEBHOOK_SECRET must be whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("MANAGER_WEBHOOK_SECRET must hold at least 16 bytes")
    return key


def new_secret() -> str:
    """A fresh secret: 32 random bytes, as ``whsec_<base64>``."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signatures(keys: list[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The header for several keys (a rotation's overlap): space-separated ``v1,`` values."""
    return " ".join(signature(key, webhook_id, timestamp, body) for key in keys)


def secret_path(data_dir: Path) -> Path:
    """Where the generated webhook secret of ``data_dir`` lives (an absolute path)."""
    return (data_dir / "webhook-secret").resolve()


def stored_secret(data_dir: Path) -> str | None:
    """The generated secret kept in ``data_dir``, or None when there is none yet."""
    path = secret_path(data_dir)
    secret = path.read_text().strip() if path.is_file() else ""
    return secret or None


def generated_secret(data_dir: Path) -> str:
    """The secret kept in the data dir (mode 0600), made on first use."""
    found = stored_secret(data_dir)
    if found is not None:
        return found
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    secret = new_secret()
    path.write_text(secret + "\n")
    return secret
