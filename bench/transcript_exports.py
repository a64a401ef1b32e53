"""CPU time of the transcript exports for the longest recording a task may have.

A 300 s reading (``MANAGER_MAX_AUDIO_SECONDS``) at 160 words a minute: 800 words with
times and confidences, as stored; once with Whisper-like segments (a sentence every 12
words) and once without any (the segments made from the words). For each format, the
median over ``BENCH_RUNS`` rounds of 50 renderings, in milliseconds per rendering;
the baseline is ``json.dumps`` of the same words, measured in the same run. Prints JSON.

    python bench/transcript_exports.py
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.records import TaskRecord  # noqa: E402
from web.transcript_view import Finished  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
ROUNDS = 50
WORDS = 800
VOCABULARY = "it was the best of times worst age wisdom foolishness epoch belief".split()


def _reading(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    words: list[dict[str, Any]] = []
    at = 0.2
    for index in range(WORDS):
        text = rng.choice(VOCABULARY) + ("." if index % 12 == 11 else "")
        length = 0.1 + 0.03 * len(text)
        words.append({"text": text, "start": at, "end": at + length, "confidence": 0.9})
        at += length + rng.choice((0.02, 0.05, 0.05, 0.3))
    segments = [
        {
            "text": " ".join(w["text"] for w in words[i : i + 12]),
            "start": words[i]["start"],
            "end": words[min(i + 11, WORDS - 1)]["end"],
        }
        for i in range(0, WORDS, 12)
    ]
    return words, segments


def _record(words: list[dict[str, Any]], segments: list[dict[str, Any]] | None) -> TaskRecord:
    now = datetime.now(UTC)
    return TaskRecord(
        id=uuid.uuid4(), user_id=uuid.uuid4(), title="reading.wav", text_id=None,
        reference_text=None, language="en-US", status="completed", attempt=1, last_seq=8,
        transcript=" ".join(w["text"] for w in words), result=None, words=words,
        phonemes=None, accuracy=None, mistakes=None, evaluation=None, failure_reason=None,
        webhook_url=None, created_at=now, started_at=now, completed_at=now, updated_at=now,
        duration=words[-1]["end"] + 0.5, segments=segments,
    )  # fmt: skip


def _median_ms(render: Callable[[], object]) -> tuple[float, list[float]]:
    runs = []
    for _ in range(RUNS):
        started = time.process_time()
        for _ in range(ROUNDS):
            render()
        runs.append((time.process_time() - started) / ROUNDS * 1000)
    return round(statistics.median(runs), 3), [round(r, 3) for r in runs]


def main() -> None:
    words, segments = _reading()
    out: dict[str, Any] = {"words": WORDS, "audio_seconds": round(words[-1]["end"], 1)}
    baseline, raw = _median_ms(lambda: json.dumps(words))
    out["baseline_json_dumps_words_ms"] = {"median": baseline, "runs": raw}
    for name, given in (("with_segments", segments), ("without_segments", None)):
        finished = Finished.of(_record(words, given))
        out[name] = {"cues": len(finished.cues())}
        for fmt, render in (
            ("srt", finished.srt),
            ("vtt", finished.vtt),
            ("json", finished.json),
            ("txt", finished.txt),
        ):
            median, runs = _median_ms(render)
            out[name][f"{fmt}_ms"] = {"median": median, "runs": runs}
    print(json.dumps(out, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
