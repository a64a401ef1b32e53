"""What a refused token's 401 says: a short reason for a person, never pyjwt's words."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from web.auth import Authenticator
from web.errors import ApiError

KEY = "reasons-test-secret-" + "y" * 48
NOW = 1_000_000.0
TODAY = 1_780_000_000  # 2026
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


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": USER, "exp": (TODAY + 60) * 1000},  # milliseconds: some 50,000 years on
        {"sub": USER, "exp": TODAY + 60, "iat": TODAY * 1000},
        {"sub": USER, "exp": 10**30},
        {"sub": USER, "exp": -1},
    ],
)
def test_times_that_are_not_seconds_are_401_not_500(claims: dict[str, object]) -> None:
    today = Authenticator(key=KEY, algorithm="HS512", clock=lambda: TODAY)
    with pytest.raises(ApiError) as caught:
        today.verify(_token(claims))
    assert caught.value.status == 401


def test_two_seconds_of_clock_skew_pass_within_the_leeway() -> None:
    skewed = Authenticator(key=KEY, algorithm="HS512", clock=lambda: NOW, leeway=5)
    early = _token({"sub": USER, "exp": NOW + 60, "iat": NOW + 2, "nbf": NOW + 2})
    assert str(skewed.verify(early)) == USER
    just_expired = _token({"sub": USER, "exp": NOW - 2})
    assert str(skewed.verify(just_expired)) == USER
    with pytest.raises(ApiError):
        skewed.verify(_token({"sub": USER, "exp": NOW + 60, "iat": NOW + 6}))
    with pytest.raises(ApiError):
        skewed.verify(_token({"sub": USER, "exp": NOW - 6}))


def test_the_default_leeway_is_a_few_seconds() -> None:
    from web.auth import authenticator
    from web.settings import Settings

    settings = Settings(_env_file=None, auth_jwt_secret=KEY)
    assert 2 <= settings.auth_jwt_leeway_seconds <= 10
    token = jwt.encode(
        {"sub": USER, "exp": 2**31, "iat": int(time.time()) + 2}, KEY, algorithm="HS512"
    )
    assert str(authenticator(settings).verify(token)) == USER


def test_audience_and_issuer_are_checked_only_when_configured() -> None:
    checked = Authenticator(
        key=KEY, algorithm="HS512", clock=lambda: NOW, audience="tasks", issuer="ilps-auth"
    )
    good = {"sub": USER, "exp": NOW + 60, "aud": "tasks", "iss": "ilps-auth"}
    assert str(checked.verify(_token(good))) == USER
    for wrong, reason in [
        ({**good, "aud": "billing"}, "the token is meant for another audience"),
        ({**good, "iss": "someone"}, "the token is from another issuer"),
        ({k: v for k, v in good.items() if k != "aud"}, "the token has no 'aud' claim"),
    ]:
        with pytest.raises(ApiError) as caught:
            checked.verify(_token(wrong))
        assert caught.value.detail == reason
    assert str(_auth().verify(_token(good))) == USER  # off by default: ILPS's tokens pass
    assert str(_auth().verify(_token({"sub": USER, "exp": NOW + 60}))) == USER
