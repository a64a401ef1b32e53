"""What a start that cannot use its database says: one line, not a traceback.

The causes a newcomer meets (nothing listening, a host name that does not resolve, a
role or database that does not exist, a wrong password) arrive wrapped: by SQLAlchemy
(the migrations), by asyncpg, by task groups. This finds the cause in the chain.
"""

from __future__ import annotations

import socket

import asyncpg

#: asyncpg's refusals by the server at connection time, as they read.
_REFUSALS = (
    asyncpg.InvalidAuthorizationSpecificationError,  # role "x" does not exist
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidCatalogNameError,  # database "x" does not exist
    asyncpg.CannotConnectNowError,  # starting up, shutting down
)


def _causes(error: BaseException) -> list[BaseException]:
    """``error``, what it wraps (causes, contexts, a group's members), depth first."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        for linked in (current.__context__, current.__cause__):
            if linked is not None:
                pending.append(linked)
    return found


def database_unusable(error: BaseException) -> str | None:
    """Why the database could not be used at start, in a few words; None for another failure."""
    for cause in _causes(error):
        if isinstance(cause, _REFUSALS):
            return str(cause).strip()
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused (is PostgreSQL running there?)"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return None
