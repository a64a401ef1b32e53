"""The manager's own overhead per task: end to end minus engine time (embedded engines).

    python bench/engine_overhead.py [recording.wav]

A real server (embedded decoding, recogniser and scoring; capacity 1, one task
at a time, workers warmed up by 2 tasks first). Per task: the client's time from
sending ``POST /tasks`` to receiving the ``completed`` event on the task's stream
(opened right after the 201). Engine time: the same three stages called directly
in this process (same classes, warm worker processes), on the same clip, right
after each task, so each pair sees the same machine. Overhead = the median of the
10 pairs' differences (end to end - engine); median of 3 runs.

On a machine whose speed drifts, a few-second engine run varies by more than the
overhead itself, so the difference can come out negative. Hence a second figure,
``instant_stages_ms``: POST-to-``completed`` with the three stages at the ILPS
stubs answering at once (``bench/_stubs.py``, transcribing delay 0, a text_id so
all three run): everything the manager does for a task, plus three loopback HTTP
calls, with no engine time to subtract. Median of 10 tasks, median of 3 runs.
Also reported: the server-side view, ``completed.created_at - created.created_at``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import (
    ROOT,
    RUNS,
    database,
    emit,
    machine,
    median,
    multipart,
    service,
    stub_env,
    stubs,
    token,
    wav_bytes,
)

CLIP = ROOT / "tests" / "data" / "two_cities_5s.wav"
REFERENCE = "It was the best of times, it was the worst of times"
TASKS = 10


async def _one_task(
    client: httpx.AsyncClient, body: bytes, content_type: str
) -> tuple[float, float]:
    started = time.perf_counter()
    r = await client.post("/tasks", content=body, headers={"Content-Type": content_type})
    r.raise_for_status()
    task_id = r.json()["id"]
    first = last = None
    async with client.stream("GET", f"/tasks/{task_id}/events") as events:
        async for line in events.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            moment = datetime.fromisoformat(data["created_at"]).timestamp()
            first = moment if first is None else first
            if data["type"] == "status" and data["status"] in ("completed", "failed"):
                assert data["status"] == "completed", data
                last = moment
                break
    assert first is not None
    assert last is not None
    return time.perf_counter() - started, last - first


Engine = Callable[[], Awaitable[float]]


async def _engine(data: bytes) -> Engine:
    """The three embedded stages called directly, as one timed call, warmed up."""
    from speech.base import AudioInput
    from speech.decode import EmbeddedPreprocessor
    from speech.evaluate import EmbeddedEvaluator
    from speech.recognise import EmbeddedTranscriber

    limiter = anyio.CapacityLimiter(1)
    pre, asr = EmbeddedPreprocessor(300, limiter), EmbeddedTranscriber(limiter)
    judge = EmbeddedEvaluator(limiter)

    async def progress(fraction: float) -> None:
        pass

    async def once() -> float:
        started = time.perf_counter()
        audio = await pre.preprocess(AudioInput(data, "audio/wav", CLIP.name))
        words = await asr.transcribe(audio, "en-US", progress)
        await judge.evaluate(words, REFERENCE, None)
        return time.perf_counter() - started

    for _ in range(2):
        await once()
    return once


async def _pairs(url: str, bearer: str, data: bytes) -> dict[str, Any]:
    body, content_type = multipart(data, {"reference_text": REFERENCE})
    headers = {"Authorization": f"Bearer {bearer}"}
    engine = await _engine(data)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        for _ in range(2):
            await _one_task(client, body, content_type)
        e2e, server_side, engine_times = [], [], []
        for _ in range(TASKS):
            whole, server = await _one_task(client, body, content_type)
            e2e.append(whole)
            server_side.append(server)
            engine_times.append(await engine())
    ms = 1000
    return {
        "e2e_ms": round(statistics.median(e2e) * ms, 2),
        "server_side_ms": round(statistics.median(server_side) * ms, 2),
        "engine_ms": round(statistics.median(engine_times) * ms, 2),
        "overhead_ms": round(
            statistics.median(w - e for w, e in zip(e2e, engine_times, strict=True)) * ms, 2
        ),
    }


async def _instant(url: str, bearer: str) -> float:
    body, content_type = multipart(wav_bytes(1.0), {"text_id": str(uuid.UUID(int=7))})
    headers = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(3):
            await _one_task(client, body, content_type)
        times = [(await _one_task(client, body, content_type))[0] for _ in range(TASKS)]
    return round(statistics.median(times) * 1000, 2)


def instant_stages(bearer: str) -> float:
    with (
        stubs(transcribing=0.0) as ports,
        database("overhead") as db,
        service(db, capacity=1, **stub_env(ports)) as (url, _),
    ):
        return anyio.run(_instant, url, bearer)


def main(path: Path) -> None:
    data = path.read_bytes()
    bearer = token(uuid.uuid4())
    runs = []
    for _ in range(RUNS):
        with database("overhead") as db, service(db, capacity=1) as (url, _):
            runs.append(anyio.run(_pairs, url, bearer, data))
        runs[-1]["instant_stages_ms"] = instant_stages(bearer)
    emit(
        {
            "machine": machine(),
            "audio": path.name,
            "overhead_ms": median([r["overhead_ms"] for r in runs]),
            "instant_stages_ms": median([r["instant_stages_ms"] for r in runs]),
            "e2e_ms": median([r["e2e_ms"] for r in runs]),
            "engine_ms": median([r["engine_ms"] for r in runs]),
            "runs": runs,
        }
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else CLIP)
