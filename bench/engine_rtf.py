"""Real-time factor of the embedded recogniser (processing seconds per audio second).

With 1 worker, one clip at a time; with N workers (N = CPU count), N copies of
the clip at once, so the figure is wall time divided by all the audio done.
Each figure is the median of 3 runs after a warm-up that loads the models in
every worker. Prints one JSON object.

    python bench/engine_rtf.py [path.wav]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speech.base import AudioInput, NormalisedAudio  # noqa: E402
from speech.decode import decode_audio  # noqa: E402
from speech.recognise import EmbeddedTranscriber  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "two_cities_5s.wav"
RUNS = 3


async def _ignore(fraction: float) -> None:
    pass


async def _batch(transcriber: EmbeddedTranscriber, audio: NormalisedAudio, copies: int) -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(copies):
            tg.start_soon(transcriber.transcribe, audio, "en-US", _ignore)
    return time.perf_counter() - started


async def _rtf(audio: NormalisedAudio, workers: int) -> tuple[float, list[float]]:
    transcriber = EmbeddedTranscriber(anyio.CapacityLimiter(workers))
    await _batch(transcriber, audio, workers)  # warm-up: start workers, load models
    walls = [await _batch(transcriber, audio, workers) for _ in range(RUNS)]
    rtfs = [round(wall / (workers * audio.duration), 4) for wall in walls]
    return statistics.median(rtfs), rtfs


async def main(path: Path, data: bytes) -> None:
    upload = AudioInput(data, "audio/wav", path.name)
    audio = decode_audio(upload, 3600)
    n = os.cpu_count() or 1
    one, one_runs = await _rtf(audio, 1)
    many, many_runs = await _rtf(audio, n)
    report = {
        "engine": "Whisper tiny.en (int8, beam 1) + hama phonemes",
        "audio": path.name,
        "audio_seconds": audio.duration,
        "cpu_count": n,
        "rtf_1_worker": one,
        "rtf_n_workers": many,
        "n_workers": n,
        "runs": {"1": one_runs, str(n): many_runs},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    clip = Path(sys.argv[1]) if len(sys.argv) > 1 else CLIP
    anyio.run(main, clip, clip.read_bytes())
