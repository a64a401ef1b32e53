"""What a refused token's 401 says: a short reason for a person, never pyjwt's words."""

from __future__ import annotations

import uuid

import jwt
import pytest

from web.auth import Authenticator
from web.errors import ApiError

KEY = "reasons-test-secret-" + "y" * 48
NOW = 1_000_000.0
USER = str(uuid.uuid4())
ALGORITHM = "the token is signed with an algorithm this service does not accept"


def _auth() -> Authenticator:
    return Authenticator(key=KEY, algorithm="HS512", clock=lambda: NOW)


def _token(claims: dict[str, object], key: str = KEY, algorithm: str = "HS512") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_token({"sub": USER, "exp": NOW - 1}), "the token has expired"),
        (_token({"sub": USER, "exp": NOW + 60}, "another-key-" * 6), "the token's signature is invalid"),  # noqa: E501
        (_token({"sub": USER, "exp": NOW + 60, "nbf": NOW + 30}), "the token is not valid yet"),
        (_token({"sub": USER, "exp": NOW + 60, "iat": NOW + 30}), "the token is not valid yet"),
        (_token({"sub": USER, "exp": NOW + 60}, KEY, "HS256"), ALGORITHM),
        (_token({"sub": USER}), "the token has no 'exp' claim"),
        (_token({"exp": NOW + 60}), "the token has no 'sub' claim"),
        (_token({"sub": USER, "exp": "never"}), "the token's times are not numbers"),
        (_token({"sub": 42, "exp": NOW + 60}), "the token's subject is not a user id"),
        (_token({"sub": "admin", "exp": NOW + 60}), "the token's subject is not a user id"),
        ("not-a-token", "the token is malformed"),
        ("%%%.%%%.%%%", "the token is malformed"),
    ],
)  # fmt: skip
def test_a_refused_token_gets_a_short_human_reason(token: str, reason: str) -> None:
    with pytest.raises(ApiError) as caught:
        _auth().verify(token)
    assert caught.value.status == 401
    assert caught.value.detail == reason


def test_a_token_valid_by_the_injected_clock_passes() -> None:
    token = _token({"sub": USER, "exp": NOW + 1, "nbf": NOW, "iat": NOW})
    assert str(_auth().verify(token)) == USER
