"""Who is calling: a verified bearer JWT (``sub`` = the user's UUID) or a trusted gateway header."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from uuid import UUID

import jwt
from starlette.requests import HTTPConnection

from ops.logs import USER_ID
from web.errors import ApiError
from web.settings import Settings

_CHALLENGE = 'Bearer realm="tasks"'


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

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[str, tuple[UUID, float]] = {}

    def get(self, token: str) -> UUID | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        user_id, expires = entry
        if time.time() >= expires:
            del self._entries[token]
            return None
        return user_id

    def put(self, token: str, user_id: UUID, expires: float) -> None:
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[token] = (user_id, expires)


class Authenticator:
    """Turns a request into the caller's user id, or a 401."""

    def __init__(
        self,
        *,
        key: str | bytes,
        algorithm: str,
        mode: str = "jwt",
        gateway_header: str = "X-User-Id",
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._mode = mode
        self._gateway_header = gateway_header
        self._verified = _VerifiedTokens(4096)

    def user_id(self, connection: HTTPConnection) -> UUID:
        """The caller; the rest of the request's log lines carry it."""
        user = self._caller(connection)
        USER_ID.set(user)
        return user

    def _caller(self, connection: HTTPConnection) -> UUID:
        if self._mode == "gateway":
            return self._from_gateway(connection)
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "a bearer token is required", headers={"WWW-Authenticate": _CHALLENGE}
            )
        return self.verify(token.strip())

    def verify(self, token: str) -> UUID:
        known = self._verified.get(token)
        if known is not None:
            return known
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],  # one algorithm: no "none", no HS/RS confusion
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise _unauthorized(f"the token is not valid: {error}") from None
        try:
            user_id = UUID(str(claims["sub"]))
        except ValueError:
            raise _unauthorized("the token's subject is not a user id") from None
        self._verified.put(token, user_id, float(claims["exp"]))
        return user_id

    def _from_gateway(self, connection: HTTPConnection) -> UUID:
        try:
            return UUID(connection.headers[self._gateway_header])
        except (KeyError, ValueError):
            raise ApiError(401, f"the {self._gateway_header} header must hold a user id") from None


def issue_token(secret: str, user_id: UUID, *, algorithm: str = "HS512", days: int = 30) -> str:
    """A development token for ``user_id``, signed like the ILPS auth service signs them."""
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + days * 86400}
    return jwt.encode(claims, secret, algorithm=algorithm)


def development_secret(data_dir: Path) -> str:
    """The secret kept in the data dir (mode 0600), made on first use."""
    path = data_dir / "jwt-secret"
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
    )
