"""A verified token's time claims, checked against the service's clock, and what a person
is told when a token is refused.

pyjwt checks ``exp``, ``nbf`` and ``iat`` against the wall clock; the service checks
them here against the clock it was given, the same one its memory of verified tokens
uses, so both agree and tests can move time. pyjwt's own messages stay in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from jwt.exceptions import InvalidSubjectError


def _number(claims: Mapping[str, Any], name: str) -> int | None:
    if name not in claims:
        return None
    try:
        return int(claims[name])  # as pyjwt reads them: integers, or strings and floats of one
    except (ValueError, TypeError, OverflowError):
        raise jwt.DecodeError(f"the {name} claim is not a number") from None


#: Seconds since the epoch of 9999-12-31: a time past it is not in seconds (milliseconds,
#: say), and no date can hold it.
_LATEST = 253_402_300_799


def check_times(claims: Mapping[str, Any], now: float, leeway: float = 0.0) -> int:
    """Raise pyjwt's error for a token expired or not valid yet at ``now``, give or take
    ``leeway`` seconds of clock skew; its expiry."""
    expires, not_before, issued = (_number(claims, n) for n in ("exp", "nbf", "iat"))
    if expires is None:
        raise jwt.MissingRequiredClaimError("exp")
    if any(t is not None and not 0 <= t <= _LATEST for t in (expires, not_before, issued)):
        raise jwt.DecodeError("the times claim is not in seconds")
    early = now + leeway
    if (not_before is not None and not_before > early) or (issued is not None and issued > early):
        raise jwt.ImmatureSignatureError("the token is not valid yet")
    if expires <= now - leeway:
        raise jwt.ExpiredSignatureError("the token has expired")
    return expires


def reason(error: jwt.InvalidTokenError) -> str:
    """A short reason for the 401's detail."""
    match error:
        case jwt.ExpiredSignatureError():
            return "the token has expired"
        case jwt.ImmatureSignatureError():
            return "the token is not valid yet"
        case jwt.InvalidSignatureError():
            return "the token's signature is invalid"
        case jwt.InvalidAlgorithmError():
            return "the token is signed with an algorithm this service does not accept"
        case jwt.MissingRequiredClaimError(claim=claim) if claim in ("exp", "sub"):
            return f"the token has no '{claim}' claim"
        case InvalidSubjectError():
            return "the token's subject is not a user id"
        case jwt.DecodeError() if "claim is not a number" in str(error):
            return "the token's times are not numbers"
        case jwt.DecodeError() if "claim is not in seconds" in str(error):
            return "the token's times are not seconds since 1970 (milliseconds?)"
        case jwt.InvalidAudienceError():
            return "the token is meant for another audience"
        case jwt.InvalidIssuerError():
            return "the token is from another issuer"
        case jwt.MissingRequiredClaimError(claim=claim) if claim in ("aud", "iss"):
            return f"the token has no '{claim}' claim"
        case jwt.DecodeError():
            return "the token is malformed"
    return "the token is not valid"
