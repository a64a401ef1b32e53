"""The instants a ``timestamptz`` parameter can carry from Python to PostgreSQL.

asyncpg sends an aware datetime as UTC. A time near the ends of Python's range
whose offset moves it past them (``0001-01-01T00:00:00+14:00`` is year 0 in UTC)
cannot be converted, and the query fails: such times are refused before any
query runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The first and last instants that stay within Python's range in UTC.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def representable(moment: datetime) -> bool:
    """Whether ``moment`` can be sent as a timestamptz (a naive one is read as UTC)."""
    if moment.utcoffset() is None:
        return True
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True
