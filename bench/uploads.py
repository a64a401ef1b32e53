"""Uploads: the server's resident memory and event-loop stalls while 25 MiB uploads stream in.

    git worktree add --detach /tmp/stm-before main    # the checkout to compare with
    python bench/uploads.py /tmp/stm-before
    git worktree remove /tmp/stm-before

For each checkout (this one, and the one named, alternating, ``BENCH_RUNS`` rounds):
a fresh database, the ILPS stage stubs with preprocessing held at its gate and
MANAGER_CAPACITY=1 (one task waits in preprocessing, the others queue: no engine work
and no audio read back but that one's), the service in-process with a stall probe
(``bench/_upload_server.py``: a 1 ms sleep in a loop, how much longer each took, and
how much CPU the loop's thread spent meanwhile: on a shared machine lateness also counts
waits for a core, the CPU figure only work that blocked the loop).
Then one 25 MiB upload alone, and 16 at once; sampled every 5 ms: the server's RSS
above what it was before the uploads. Prints one JSON object: medians per checkout,
and every run.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from _common import (
    BENCH,
    PY,
    ROOT,
    RUNS,
    database,
    emit,
    free_port,
    machine,
    median,
    migrate,
    service_env,
    stub_control,
    stub_env,
    stubs,
    token,
    wait_http,
)

MIB = 1024 * 1024
SIZE = 25 * MIB - 4096  # under MANAGER_MAX_UPLOAD_BYTES with the multipart framing
CONCURRENT = 16


def _wav(size: int) -> bytes:
    """A tone (the decoder refuses silence) as a 16 kHz mono WAV of about ``size`` bytes."""
    samples = (size - 44) // 2
    tone = (8000 * np.sin(np.arange(samples) * (2 * np.pi * 220 / 16_000))).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(16_000)
        target.writeframes(tone.tobytes())
    return out.getvalue()


class _Peak:
    """The highest RSS of a process, sampled every 5 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> _Peak:
        self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _upload(client: httpx.AsyncClient, wav: bytes, user: uuid.UUID) -> int:
    answer = await client.post(
        "/tasks",
        files={"file": ("long.wav", wav, "audio/wav")},
        headers={"Authorization": f"Bearer {token(user)}"},
    )
    return answer.status_code


async def _uploads(url: str, wav: bytes, count: int) -> list[int]:
    user = uuid.uuid4()
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        return list(await asyncio.gather(*(_upload(client, wav, user) for _ in range(count))))


def _measure(server: subprocess.Popen[str], url: str, wav: bytes, count: int) -> dict[str, Any]:
    rss_before = psutil.Process(server.pid).memory_info().rss
    server.send_signal(signal.SIGUSR1)
    time.sleep(0.2)
    started = time.perf_counter()
    with _Peak(server.pid) as peak:
        statuses = asyncio.run(_uploads(url, wav, count))
    seconds = time.perf_counter() - started
    server.send_signal(signal.SIGUSR2)
    assert server.stdout is not None
    stalls = json.loads(server.stdout.readline())
    growth = (peak.peak - rss_before) / MIB
    return {
        "uploads": count,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "rss_growth_mib": round(growth, 1),
        "rss_growth_per_upload_x_size": round(growth * MIB / count / len(wav), 3),
        "seconds": round(seconds, 2),
        **stalls,
    }


def _one_run(tree: Path, wav: bytes) -> dict[str, Any]:
    with stubs() as ports, database("upl") as db:
        stub_control(ports, "close")
        migrate(db)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(db, port, capacity=1, migrate_on_start="false", **stub_env(ports))
        env["MANAGER_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-upl-")
        server = subprocess.Popen(
            [PY, str(BENCH / "_upload_server.py")],
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            wait_http(url + "/healthz", proc=server)
            asyncio.run(_uploads(url, wav[: 1024 * 1024], 2))  # warm: first task holds the gate
            return {
                "one": _measure(server, url, wav, 1),
                "many": _measure(server, url, wav, CONCURRENT),
            }
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
            stub_control(ports, "open")


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "rss_growth_mib",
        "rss_growth_per_upload_x_size",
        "stall_max_ms",
        "stall_p99_ms",
        "loop_cpu_max_ms",
        "loop_cpu_p99_ms",
        "seconds",
    )
    return {
        case: {key: median([run[case][key] for run in runs]) for key in keys}
        for case in ("one", "many")
    }


def main() -> None:
    trees = {"this": ROOT}
    if len(sys.argv) > 1:
        trees["before"] = Path(sys.argv[1]).resolve()
    wav = _wav(SIZE)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(RUNS):
        for name, tree in trees.items():
            runs[name].append(_one_run(tree, wav))
    emit(
        {
            "machine": machine(),
            "upload_bytes": len(wav),
            "concurrent": CONCURRENT,
            "medians": {name: _medians(found) for name, found in runs.items()},
            "runs": runs,
            "trees": {name: str(tree) for name, tree in trees.items()},
            "pid": os.getpid(),
        }
    )


if __name__ == "__main__":
    main()
