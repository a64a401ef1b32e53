"""Who is calling: a verified bearer JWT (``sub`` = the user's UUID) or a trusted gateway header."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import jwt
from starlette.requests import HTTPConnection

from ops.logs import USER_ID
from web.console.cookie import session_token
from web.errors import ApiError
from web.settings import Settings
from web.token_checks import check_times, reason
from web.trusted import TrustedNetworks

log = logging.getLogger(__name__)

#: Seconds since the epoch; ``time.time`` unless a test moves time itself.
Clock = Callable[[], float]
_CHALLENGE = 'Bearer realm="tasks"'


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as its credentials prove."""

    user_id: UUID
    #: Seconds since the epoch when the credentials stop working (inf: a gateway's word).
    expires: float = float("inf")
    #: Named by the gateway's header, not by a token.
    from_header: bool = False


def _unauthorized(detail: str) -> ApiError:
    return ApiError(
        401, detail, headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'}
    )


class _VerifiedTokens:
    """Tokens whose signature has been checked, until they expire (a bounded map).

    Checking a signature cost a tenth of a detail read's CPU; a client sends the
    same token with every request. Only what verification proved is kept: the
    user id and the expiry, which is checked again on every use.
    """

    def __init__(self, size: int, clock: Clock) -> None:
        self._size = size
        self._clock = clock
        self._entries: dict[str, Caller] = {}

    def get(self, token: str) -> Caller | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock() >= entry.expires:
            del self._entries[token]
            return None
        return entry

    def put(self, token: str, caller: Caller) -> None:
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[token] = caller


class Authenticator:
    """Turns a request into the caller's user id, or a 401."""

    def __init__(
        self,
        *,
        key: str | bytes,
        algorithm: str,
        mode: str = "jwt",
        gateway_header: str = "X-User-Id",
        clock: Clock = time.time,
        trusted: TrustedNetworks | None = None,
        leeway: float = 0.0,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._leeway = leeway
        self._audience = audience
        self._issuer = issuer
        self._key = key
        self._algorithm = algorithm
        self._mode = mode
        self._gateway_header = gateway_header
        self._clock = clock
        self._trusted = trusted if trusted is not None else TrustedNetworks(())
        self._verified = _VerifiedTokens(4096, clock)

    @property
    def mode(self) -> str:
        return self._mode

    def user_id(self, connection: HTTPConnection) -> UUID:
        """The caller; the rest of the request's log lines carry it."""
        user = self.caller(connection).user_id
        USER_ID.set(user)
        return user

    def caller(self, connection: HTTPConnection) -> Caller:
        """The bearer token's caller, else the console's session cookie's, else a 401."""
        if self._mode == "gateway":
            return Caller(self._from_gateway(connection), from_header=True)
        header = connection.headers.get("authorization")
        cookie = session_token(connection)
        if header is None and cookie is not None:
            return self.session(cookie)
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "a bearer token is required", headers={"WWW-Authenticate": _CHALLENGE}
            )
        return self.session(token.strip())

    def verify(self, token: str) -> UUID:
        return self.session(token).user_id

    def session(self, token: str) -> Caller:
        """What a valid token proves (its user, its expiry); a 401 otherwise."""
        known = self._verified.get(token)
        if known is not None:
            return known
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],  # one algorithm: no "none", no HS/RS confusion
                # The times are checked by check_times, against this service's clock.
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    # Checked only when configured: ILPS's tokens carry neither.
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
                audience=self._audience,
                issuer=self._issuer,
            )
            expires = check_times(claims, self._clock(), self._leeway)
        except jwt.InvalidTokenError as error:
            log.info("a token was refused: %s: %s", type(error).__name__, error)
            raise _unauthorized(reason(error)) from None
        try:
            user_id = UUID(str(claims["sub"]))
        except ValueError:
            raise _unauthorized("the token's subject is not a user id") from None
        # No claim makes an operator: anyone holding the shared secret could set one.
        caller = Caller(user_id, float(expires))
        self._verified.put(token, caller)
        return caller

    def _from_gateway(self, connection: HTTPConnection) -> UUID:
        self._trusted.check(connection.scope)  # the header proves nothing from elsewhere
        try:
            return UUID(connection.headers[self._gateway_header])
        except (KeyError, ValueError):
            raise ApiError(401, f"the {self._gateway_header} header must hold a user id") from None


def issue_token(secret: str, user_id: UUID, *, algorithm: str = "HS512", days: int = 30) -> str:
    """A development token for ``user_id``, signed like the ILPS auth service signs them."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + days * 86400}
    return jwt.encode(claims, secret, algorithm=algorithm)


def secret_path(data_dir: Path) -> Path:
    """Where the development secret of ``data_dir`` lives (an absolute path)."""
    return (data_dir / "jwt-secret").resolve()


def stored_secret(data_dir: Path) -> str | None:
    """The development secret kept in ``data_dir``, or None when there is none yet."""
    path = secret_path(data_dir)
    secret = path.read_text().strip() if path.is_file() else ""
    return secret or None


def development_secret(data_dir: Path) -> str:
    """The secret kept in the data dir (mode 0600), made on first use."""
    path = secret_path(data_dir)
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def signing_key(settings: Settings) -> str:
    """The key tokens are verified with: configured public key or secret, else the dev secret."""
    if settings.auth_jwt_algorithm.startswith(("RS", "ES")):
        if not settings.auth_jwt_public_key:
            raise ValueError("MANAGER_AUTH_JWT_PUBLIC_KEY is required for RS256/ES256")
        key = settings.auth_jwt_public_key
        return Path(key).read_text() if not key.lstrip().startswith("-----") else key
    if settings.auth_jwt_secret is not None:
        return settings.auth_jwt_secret.get_secret_value()
    return development_secret(settings.data_dir)


def authenticator(settings: Settings) -> Authenticator:
    return Authenticator(
        key=signing_key(settings),
        algorithm=settings.auth_jwt_algorithm,
        mode=settings.auth_mode,
        gateway_header=settings.auth_gateway_header,
        trusted=settings.trusted(),
        leeway=settings.auth_jwt_leeway_seconds,
        audience=settings.auth_jwt_audience,
        issuer=settings.auth_jwt_issuer,
    )
