"""Embedded preprocessing: any upload FFmpeg (PyAV) reads, or headerless PCM, to 16 kHz mono.

Decoding runs in a worker process (an FFmpeg crash kills a worker, not the
server) and stops as soon as the audio passes the length limit, so a tiny file
that expands to hours costs no more than the limit.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Generator, Iterator
from typing import Any

import av
import numpy as np
from anyio import CapacityLimiter

from .base import SAMPLE_RATE, AudioInput, NormalisedAudio, PermanentStageError
from .sniff import has_container_magic, has_strong_magic, media_type, says_pcm, sniff_audio
from .workers import run_in_worker

__all__ = ["EmbeddedPreprocessor", "check_audio", "decode_audio", "sniff_audio"]

#: The ILPS Android app records s16le at 44,100 Hz in stereo, without a header.
PCM_RATE, PCM_CHANNELS = 44_100, 2
#: A recording whose peak stays below -60 dBFS (32 of 32,768) is silent.
SILENCE_PEAK = 32
#: Shorter than this holds no word.
MIN_SECONDS = 0.1
_PCM_CHUNK_SECONDS = 1


def _too_long(max_seconds: float) -> PermanentStageError:
    return PermanentStageError(f"the recording is longer than the limit of {max_seconds:g} seconds")


def check_audio(pcm: bytes, max_seconds: float) -> NormalisedAudio:
    """Refuse empty, silent and too long 16 kHz mono s16le audio; measure the rest."""
    samples = np.frombuffer(pcm, dtype="<i2")
    if samples.size == 0:
        raise PermanentStageError("the recording contains no audio")
    duration = samples.size / SAMPLE_RATE
    if duration > max_seconds:
        raise _too_long(max_seconds)
    if duration < MIN_SECONDS:
        raise PermanentStageError(f"the recording is too short ({duration:.2f} seconds)")
    if int(np.abs(samples.astype(np.int32)).max()) < SILENCE_PEAK:
        raise PermanentStageError("the recording is silent")
    return NormalisedAudio(pcm=pcm, duration=duration)


def _is_raw_pcm(audio: AudioInput) -> bool:
    """Headerless PCM: said so (name, raw type, overrides) or octet-stream without a container."""
    overridden = audio.sample_rate is not None or audio.channels is not None
    if overridden or says_pcm(audio.filename, audio.content_type):
        # Only strong signatures: PCM starting with samples of -1 looks like an MPEG frame.
        return not has_strong_magic(audio.data[:16])
    octet = media_type(audio.content_type) == "application/octet-stream"
    return octet and not has_container_magic(audio.data[:16])


def _pcm_frames(audio: AudioInput, max_seconds: float) -> Generator[Any, None, None]:
    rate = audio.sample_rate or PCM_RATE
    channels = audio.channels or PCM_CHANNELS
    if not 1_000 <= rate <= 384_000 or not 1 <= channels <= 8:
        raise PermanentStageError(f"unsupported PCM format: {rate} Hz, {channels} channels")
    frame_bytes = 2 * channels
    total = len(audio.data) // frame_bytes
    if total / rate > max_seconds:
        raise _too_long(max_seconds)
    chunk = rate * _PCM_CHUNK_SECONDS
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        data = audio.data[start * frame_bytes : (start + count) * frame_bytes]
        # Channels are averaged here, so the resampler only sees mono.
        stereo = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
        mono = stereo.mean(axis=1).round().astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(mono, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        yield frame


def _container_frames(data: bytes, max_seconds: float) -> Generator[Any, None, None]:
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError) as exc:
        raise PermanentStageError("the file is not audio in a format we can read") from exc
    with container:
        if not container.streams.audio:
            raise PermanentStageError("the file has no audio track")
        # A header that already announces more than the limit is refused at once.
        if container.duration and container.duration / av.time_base > max_seconds + 1:
            raise _too_long(max_seconds)
        decoded = False
        try:
            for frame in container.decode(container.streams.audio[0]):
                decoded = True
                yield frame
        except av.FFmpegError as exc:
            # A truncated upload keeps the audio before the damage.
            if not decoded:
                raise PermanentStageError("the file is not audio in a format we can read") from exc


def decode_audio(audio: AudioInput, max_seconds: float) -> NormalisedAudio:
    """Decode, downmix and resample to 16 kHz mono s16le (runs in a worker process)."""
    if not audio.data:
        raise PermanentStageError("the upload is empty")
    frames = (
        _pcm_frames(audio, max_seconds)
        if _is_raw_pcm(audio)
        else _container_frames(audio.data, max_seconds)
    )
    try:
        pcm = _resample(frames, int(max_seconds * SAMPLE_RATE) + 1, max_seconds)
    except (av.FFmpegError, ValueError) as exc:
        raise PermanentStageError("the audio could not be decoded") from exc
    finally:
        frames.close()
    return check_audio(pcm, max_seconds)


def _resample(frames: Iterator[Any], limit: int, max_seconds: float) -> bytes:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[bytes] = []
    count = 0
    for frame in itertools.chain(frames, [None]):  # None flushes the resampler
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().tobytes())
            count += out.samples
        if count > limit:
            raise _too_long(max_seconds)
    return b"".join(chunks)


class EmbeddedPreprocessor:
    """Decodes uploads with the FFmpeg in PyAV, in worker processes."""

    #: The engine label of its metrics.
    engine = "embedded"

    def __init__(self, max_seconds: float, limiter: CapacityLimiter) -> None:
        self._max_seconds = max_seconds
        self._limiter = limiter

    async def preprocess(self, audio: AudioInput) -> NormalisedAudio:
        if not audio.data:
            raise PermanentStageError("the upload is empty")
        return await run_in_worker(
            decode_audio, audio, self._max_seconds, limiter=self._limiter, what="decoder"
        )
