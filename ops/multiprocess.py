"""Where the metrics of every process of one service meet: prometheus_client's multiprocess mode.

Each process writes its values to files in one directory and any of them answers a
scrape with the sum, so N processes behind one port give one consistent answer.
``prepare`` must run before ``prometheus_client`` is first imported: it picks how it
stores values at import. Only the standard library is imported here for that reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(data_dir: Path) -> Path:
    """Point prometheus_client at ``<data_dir>/metrics``, emptied, unless a launcher did.

    A launcher of several processes sets ``PROMETHEUS_MULTIPROC_DIR`` and empties it
    once before it starts them; each of them then keeps what it finds.
    """
    existing = os.environ.get(ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return Path(existing)
    directory = data_dir / "metrics"
    # The files of an earlier run hold its values: this run starts from zero.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[ENV] = str(directory)
    return directory


def process_ended(pid: int) -> None:
    """Drop a process's live gauges from the sums; its counters stay in the totals."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
