"""The manager's own overhead per task: end to end minus engine time (embedded engines).

    python bench/engine_overhead.py [recording.wav]

A real server (embedded decoding, recogniser and scoring; capacity 1, one task
at a time, workers warmed up by 2 tasks first). Per task: the client's time from
sending ``POST /tasks`` to receiving the ``completed`` event on the task's stream
(opened right after the 201). Engine time: the same three stages called directly
in this process (same classes, warm worker processes), on the same clip. Overhead
= median end to end - median engine time, over 10 tasks; median of 3 runs.
Also reported: the server-side view, ``completed.created_at - created.created_at``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import ROOT, RUNS, database, emit, machine, median, multipart, service, token

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


async def _service_run(url: str, bearer: str, body: bytes, content_type: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        for _ in range(2):
            await _one_task(client, body, content_type)
        results = [await _one_task(client, body, content_type) for _ in range(TASKS)]
    return {
        "e2e_ms": round(statistics.median(r[0] for r in results) * 1000, 2),
        "server_side_ms": round(statistics.median(r[1] for r in results) * 1000, 2),
    }


async def _engine_times(data: bytes) -> list[float]:
    from supervisor.stages.base import AudioInput
    from supervisor.stages.decode import EmbeddedPreprocessor
    from supervisor.stages.evaluate import EmbeddedEvaluator
    from supervisor.stages.recognise import EmbeddedTranscriber

    limiter = anyio.CapacityLimiter(1)
    pre, asr = EmbeddedPreprocessor(300, limiter), EmbeddedTranscriber(limiter)
    judge = EmbeddedEvaluator()

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
    return [await once() for _ in range(TASKS)]


def main(path: Path) -> None:
    data = path.read_bytes()
    body, content_type = multipart(data, {"reference_text": REFERENCE})
    bearer = token(uuid.uuid4())
    runs = []
    for _ in range(RUNS):
        with database("overhead") as db, service(db, capacity=1) as (url, _):
            run = asyncio.run(_service_run(url, bearer, body, content_type))
        engine = anyio.run(_engine_times, data)
        run["engine_ms"] = round(statistics.median(engine) * 1000, 2)
        run["overhead_ms"] = round(run["e2e_ms"] - run["engine_ms"], 2)
        runs.append(run)
    emit({
        "machine": machine(),
        "audio": path.name,
        "overhead_ms": median([r["overhead_ms"] for r in runs]),
        "e2e_ms": median([r["e2e_ms"] for r in runs]),
        "engine_ms": median([r["engine_ms"] for r in runs]),
        "runs": runs,
    })


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else CLIP)
