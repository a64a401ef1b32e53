"""The service in-process, with an event-loop stall probe: the server half of
``bench/uploads.py``. Run with the checkout under test as the working directory (it
imports that checkout's service); configured by ``MANAGER_*`` variables.

SIGUSR1 starts recording stalls, SIGUSR2 prints what was recorded as one JSON line and
starts afresh; SIGTERM stops the service.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import anyio

sys.path.insert(0, os.getcwd())

from service.running import _tune_garbage_collector, open_service  # noqa: E402
from speech.settings import SpeechSettings  # noqa: E402
from web.settings import Settings  # noqa: E402

#: The probe's sleep: a stall is how much longer than this a sleep took.
TICK = 0.001


async def _probe(stalls: list[tuple[float, float]]) -> None:
    """Each tick: how late it came (wall clock), and how much CPU the loop's thread spent
    meanwhile. On a shared machine a tick is also late when the process is not scheduled;
    the CPU figure counts only work done on the loop (a blocking call), not waits for a core.
    """
    while True:
        started, cpu = time.perf_counter(), time.thread_time()
        await anyio.sleep(TICK)
        late = (time.perf_counter() - started - TICK) * 1000
        stalls.append((late, (time.thread_time() - cpu) * 1000))


def _report(stalls: list[tuple[float, float]]) -> str:
    late = sorted(s[0] for s in stalls) or [0.0]
    busy = sorted(s[1] for s in stalls) or [0.0]
    return json.dumps(
        {
            "stall_max_ms": round(late[-1], 2),
            "stall_p99_ms": round(late[int(0.99 * (len(late) - 1))], 2),
            "stalls_over_10ms": sum(1 for s in late if s > 10),
            "loop_cpu_max_ms": round(busy[-1], 2),
            "loop_cpu_p99_ms": round(busy[int(0.99 * (len(busy) - 1))], 2),
            "loop_cpu_over_10ms": sum(1 for s in busy if s > 10),
            "samples": len(stalls),
        }
    )


async def main() -> None:
    settings = Settings()
    speech = SpeechSettings()
    url = settings.external_url()
    stalls: list[tuple[float, float]] = []
    with anyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM) as signals:
        async with open_service(settings, speech, url), anyio.create_task_group() as group:
            # As run.py's serve_forever does once the service is up: untuned, a full
            # collection walks every model and module, 85-190 ms on the loop.
            _tune_garbage_collector()
            probe = anyio.CancelScope()
            async for signum in signals:
                if signum == signal.SIGTERM:
                    break
                probe.cancel()
                if signum == signal.SIGUSR2:
                    print(_report(stalls), flush=True)
                    continue
                stalls.clear()
                probe = anyio.CancelScope()

                async def run(scope: anyio.CancelScope) -> None:
                    with scope:
                        await _probe(stalls)

                group.start_soon(run, probe)
            probe.cancel()


if __name__ == "__main__":
    anyio.run(main, backend_options={"use_uvloop": True})
