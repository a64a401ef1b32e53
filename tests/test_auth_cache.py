"""Verified tokens are remembered, but never past their expiry."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from web.auth import Authenticator
from web.errors import ApiError

KEY = "cache-test-secret-" + "x" * 48


def test_a_remembered_token_stops_working_when_it_expires() -> None:
    auth = Authenticator(key=KEY, algorithm="HS512")
    user = uuid.uuid4()
    expires = int(time.time()) + 1
    token = jwt.encode({"sub": str(user), "exp": expires}, KEY, algorithm="HS512")
    assert auth.verify(token) == user
    assert auth.verify(token) == user  # from memory
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(ApiError) as caught:
        auth.verify(token)
    assert caught.value.status == 401


def test_only_verified_tokens_are_remembered() -> None:
    auth = Authenticator(key=KEY, algorithm="HS512")
    forged = jwt.encode(
        {"sub": str(uuid.uuid4()), "exp": int(time.time()) + 60},
        "other-key-" * 8,
        algorithm="HS512",
    )
    for _ in range(2):
        with pytest.raises(ApiError):
            auth.verify(forged)


def test_the_memory_is_bounded() -> None:
    auth = Authenticator(key=KEY, algorithm="HS512")
    exp = int(time.time()) + 60
    for _ in range(5000):
        auth.verify(jwt.encode({"sub": str(uuid.uuid4()), "exp": exp}, KEY, algorithm="HS512"))
    assert len(auth._verified._entries) <= 4096
