"""Embedded transcribing: pocketsphinx in worker processes, on a real human recording."""

from __future__ import annotations

import os
import signal

import anyio
import numpy as np
import psutil
import pytest

from speech import recognise
from speech.base import (
    AudioInput,
    NormalisedAudio,
    PermanentStageError,
    Transcription,
    TransientStageError,
)
from speech.decode import decode_audio
from speech.ipa import ARPABET_TO_IPA
from speech.recognise import EmbeddedTranscriber, recognise_segment, split_points
from speech.workers import run_in_worker
from tests.stages_helpers import HUMAN_CLIP


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def clip() -> NormalisedAudio:
    return decode_audio(AudioInput(HUMAN_CLIP.read_bytes(), "audio/wav", HUMAN_CLIP.name), 300)


class Progress:
    def __init__(self) -> None:
        self.fractions: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.fractions.append(fraction)


def _check_times(result: Transcription, duration: float) -> None:
    for items in (result.words, result.phonemes):
        starts = [item.start for item in items]
        assert starts == sorted(starts)
        assert all(0 <= item.start < item.end <= duration + 0.01 for item in items)


@pytest.mark.anyio
async def test_human_clip(clip: NormalisedAudio) -> None:
    progress = Progress()
    with anyio.fail_after(60):
        result = await EmbeddedTranscriber(anyio.CapacityLimiter(1)).transcribe(
            clip, "en-US", progress
        )
    assert "best of times" in result.transcript
    assert "worst of times" in result.transcript
    assert result.transcript == " ".join(w.text for w in result.words)
    assert all(0 <= w.confidence <= 1 and w.text.isalpha() for w in result.words)
    assert result.ipa
    assert len(result.phonemes) > 10
    assert set(result.ipa.split()) <= set(ARPABET_TO_IPA.values())
    assert progress.fractions == [1.0]
    _check_times(result, clip.duration)


def _probe() -> tuple[int, bool]:
    return os.getpid(), recognise._decoders is not None


@pytest.mark.anyio
async def test_long_audio_in_pieces_with_progress_and_absolute_times(
    clip: NormalisedAudio,
) -> None:
    limiter = anyio.CapacityLimiter(1)
    progress = Progress()
    with anyio.fail_after(60):
        result = await EmbeddedTranscriber(limiter, segment_seconds=2).transcribe(
            clip, "english", progress
        )
        pid, loaded = await run_in_worker(_probe, limiter=limiter, what="probe")
        again, still = await run_in_worker(_probe, limiter=limiter, what="probe")
    assert len(progress.fractions) == 3
    assert progress.fractions == sorted(progress.fractions)
    assert progress.fractions[-1] == 1.0
    assert "times" in result.transcript
    assert result.words[-1].end > 4
    _check_times(result, clip.duration)
    assert loaded
    assert still
    assert pid == again


@pytest.mark.anyio
@pytest.mark.parametrize("language", ["fr", "de-DE", "en-GB"])
async def test_other_languages_are_refused(clip: NormalisedAudio, language: str) -> None:
    transcriber = EmbeddedTranscriber(anyio.CapacityLimiter(1))
    message = f"language {language} is not supported by the embedded recogniser"
    with pytest.raises(PermanentStageError, match=message):
        await transcriber.transcribe(clip, language, Progress())


def test_results_do_not_depend_on_earlier_audio(clip: NormalisedAudio) -> None:
    piece = clip.pcm[: 2 * 16_000 * 3]
    first = recognise_segment(piece, 0.0)
    recognise_segment(np.random.default_rng(1).normal(0, 3000, 32_000).astype("<i2").tobytes(), 0)
    assert recognise_segment(piece, 0.0) == first


def test_split_points_cut_at_quiet_points() -> None:
    samples = np.full(100_000, 1000, np.int16)
    samples[34_880:35_040] = 0  # the 19th 10 ms frame of the last fifth
    bounds = split_points(samples, 40_000)
    assert bounds[0] == (0, 34_960)
    assert bounds[-1][1] == samples.size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert split_points(samples[:100], 40_000) == [(0, 100)]


def _workers(me: psutil.Process, before: set[int]) -> list[psutil.Process]:
    return [p for p in me.children(recursive=True) if p.pid not in before]


def test_a_killed_worker_is_transient_and_leaves_no_orphans(clip: NormalisedAudio) -> None:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    long = NormalisedAudio(clip.pcm * 6, clip.duration * 6)
    errors: list[TransientStageError] = []

    async def kill_when_busy() -> None:
        # Wait until a worker has imported and loaded the models (about 0.7 s of CPU)
        # and is recognising; polling, because a foreign process sends no event.
        for _ in range(1_000):
            workers = _workers(me, before)
            if workers and sum(w.cpu_times().user for w in workers) > 1.5:
                break
            await anyio.sleep(0.05)
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)

    async def main() -> None:
        transcriber = EmbeddedTranscriber(anyio.CapacityLimiter(1), segment_seconds=60)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_when_busy)
                try:
                    await transcriber.transcribe(long, "en-US", Progress())
                except TransientStageError as exc:
                    errors.append(exc)

    anyio.run(main)
    assert [e.reason for e in errors] == ["the recogniser worker process died"]
    gone, alive = psutil.wait_procs(_workers(me, before), timeout=5)
    assert alive == []
    assert _workers(me, before) == []
