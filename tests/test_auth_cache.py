"""Verified tokens are remembered, but never past their expiry (by an injected clock)."""

from __future__ import annotations

import uuid

import jwt
import pytest

from web.auth import Authenticator
from web.errors import ApiError

KEY = "cache-test-secret-" + "x" * 48


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_stops_working_when_it_expires() -> None:
    clock = Clock(1_000_000.0)
    auth = Authenticator(key=KEY, algorithm="HS512", clock=clock)
    user = uuid.uuid4()
    token = jwt.encode({"sub": str(user), "exp": 1_000_010}, KEY, algorithm="HS512")
    assert auth.verify(token) == user
    clock.now = 1_000_009.9
    assert auth.verify(token) == user  # from memory
    assert token in auth._verified._entries
    clock.now = 1_000_010.0
    with pytest.raises(ApiError) as caught:
        auth.verify(token)
    assert (caught.value.status, caught.value.detail) == (401, "the token has expired")
    assert token not in auth._verified._entries


def test_only_verified_tokens_are_remembered() -> None:
    auth = Authenticator(key=KEY, algorithm="HS512", clock=Clock(1_000_000.0))
    forged = jwt.encode(
        {"sub": str(uuid.uuid4()), "exp": 1_000_060}, "other-key-" * 8, algorithm="HS512"
    )
    for _ in range(2):
        with pytest.raises(ApiError):
            auth.verify(forged)
    assert auth._verified._entries == {}


def test_the_memory_is_bounded() -> None:
    auth = Authenticator(key=KEY, algorithm="HS512", clock=Clock(1_000_000.0))
    for _ in range(5000):
        claims = {"sub": str(uuid.uuid4()), "exp": 1_000_060}
        auth.verify(jwt.encode(claims, KEY, algorithm="HS512"))
    assert len(auth._verified._entries) <= 4096
