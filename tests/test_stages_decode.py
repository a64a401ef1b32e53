"""Embedded preprocessing: every container and the Android PCM, and the refusals."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pytest

from speech import decode
from speech.base import AudioInput, PermanentStageError
from speech.decode import EmbeddedPreprocessor, decode_audio, sniff_audio
from tests.stages_helpers import android_pcm, encode, espeak_wav, samples_of, wav_of


def _noise(size: int) -> bytes:
    """Random bytes that do not start like an MPEG frame (seeded: the same on every run)."""
    return b"\x00" + np.random.default_rng(size).bytes(size - 1)


#: (name, content type, PyAV format, codec, encoder rate or None for the source rate)
CONTAINERS = [
    ("speech.wav", "audio/wav", "wav", "pcm_s16le", None),
    ("speech.flac", "audio/flac", "flac", "flac", None),
    ("speech.mp3", "audio/mpeg", "mp3", "libmp3lame", None),
    ("speech.ogg", "audio/ogg; codecs=opus", "ogg", "libopus", 48_000),
    ("speech.webm", "audio/webm;codecs=opus", "webm", "libopus", 48_000),
    ("speech.m4a", "audio/mp4", "ipod", "aac", 44_100),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray[Any, Any], int]:
    return samples_of(espeak_wav())


@pytest.fixture(scope="module")
def uploads(speech: tuple[np.ndarray[Any, Any], int]) -> dict[str, AudioInput]:
    samples, rate = speech
    files = {
        name: AudioInput(encode(samples, rate, fmt, codec, out_rate), content_type, name)
        for name, content_type, fmt, codec, out_rate in CONTAINERS
    }
    pcm = android_pcm(samples, rate)
    files["audio_record.pcm"] = AudioInput(pcm, "application/octet-stream", "audio_record.pcm")
    return files


def test_every_container_decodes_to_the_same_duration(
    uploads: dict[str, AudioInput], speech: tuple[np.ndarray[Any, Any], int]
) -> None:
    samples, rate = speech
    expected = samples.size / rate
    for name, upload in uploads.items():
        audio = decode_audio(upload, 300)
        assert abs(audio.duration - expected) < 0.05, name
        assert len(audio.pcm) == round(audio.duration * 16_000) * 2


def test_every_container_passes_the_sniffer(uploads: dict[str, AudioInput]) -> None:
    for name, upload in uploads.items():
        assert sniff_audio(upload.data[:4096], upload.filename, upload.content_type), name


@pytest.mark.anyio
async def test_preprocessor_decodes_in_a_worker_process(uploads: dict[str, AudioInput]) -> None:
    preprocessor = EmbeddedPreprocessor(300, anyio.CapacityLimiter(1))
    with anyio.fail_after(30):
        audio = await preprocessor.preprocess(uploads["speech.webm"])
    assert 3 < audio.duration < 4


def test_pcm_overrides_rate_and_channels(speech: tuple[np.ndarray[Any, Any], int]) -> None:
    samples, rate = speech
    upload = AudioInput(samples.astype("<i2").tobytes(), "application/octet-stream", "a.pcm",
                        sample_rate=rate, channels=1)  # fmt: skip
    assert abs(decode_audio(upload, 300).duration - samples.size / rate) < 0.01


def test_pcm_that_starts_like_an_mpeg_frame_is_still_pcm() -> None:
    tone = (3000 * np.sin(np.arange(44_100 * 2) / 10)).astype("<i2")
    tone[:4] = -1  # ff ff ff ff: an MPEG sync word
    upload = AudioInput(np.repeat(tone, 2).tobytes(), "application/octet-stream", "audio.pcm")
    assert decode_audio(upload, 300).duration == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (AudioInput(b"", "audio/wav", "a.wav"), "the upload is empty"),
        (AudioInput(_noise(20_000), "audio/wav", "a.wav"), "not audio in a format"),
        (AudioInput(b"hello, world\n" * 100, "text/plain", "a.txt"), "not audio in a format"),
        (AudioInput(bytes(44_100 * 4), "application/octet-stream", "a.pcm"), "silent"),
        (AudioInput(wav_of(np.zeros(16_000, np.int16), 16_000), "audio/wav", "a.wav"), "silent"),
        (AudioInput(b"\x01\x02" * 4_000, "application/octet-stream", "a.pcm"), "too short"),
    ],
)
def test_refusals_have_reasons(upload: AudioInput, reason: str) -> None:
    with pytest.raises(PermanentStageError, match=reason):
        decode_audio(upload, 300)


def test_too_long_fails(uploads: dict[str, AudioInput]) -> None:
    for upload in uploads.values():
        with pytest.raises(PermanentStageError, match="longer than the limit of 2 seconds"):
            decode_audio(upload, 2)


def test_a_small_file_announcing_hours_fails_before_decoding_a_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clicks = np.zeros(8_000 * 1_200, np.int16)
    clicks[::1_000] = 1_000
    flac = encode(clicks, 8_000, "flac", "flac")  # 20 minutes in about 1 MB
    decoded = 0
    resample = decode._resample

    def counting(frames: Iterator[Any], limit: int, max_seconds: float) -> bytes:
        def counted() -> Iterator[Any]:
            nonlocal decoded
            for frame in frames:
                decoded += 1
                yield frame

        return resample(counted(), limit, max_seconds)

    monkeypatch.setattr(decode, "_resample", counting)
    with pytest.raises(PermanentStageError, match="longer than the limit"):
        decode_audio(AudioInput(flac, "audio/flac", "long.flac"), 300)
    assert decoded == 0  # refused from its header


def test_decoding_stops_as_soon_as_the_limit_is_passed() -> None:
    """A stream with no announced length (as browsers' WebM) that never ends."""
    second = encode(np.ones(16_000, np.int16), 16_000, "wav", "pcm_s16le")
    frame = next(iter(decode._container_frames(second, 10)))

    limit = 5 * 16_000
    needed = limit // frame.samples + 1  # the frame that passes the limit
    taken = 0

    def endless() -> Iterator[Any]:
        # Ten times what passes the limit: "endless" to a decoder that stops in time,
        # and a failure, not a hang, for one that reads on.
        nonlocal taken
        for pts in itertools.islice(itertools.count(step=frame.samples), 10 * needed):
            frame.pts = pts
            taken += 1
            yield frame

    with pytest.raises(PermanentStageError, match="longer than the limit"):
        decode._resample(endless(), limit, 5)
    assert taken <= needed + 1  # one more at most: the resampler may hold samples back


@pytest.mark.parametrize(
    ("head", "filename", "content_type", "audio"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "a.wav", "audio/wav", True),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "a.m4a", "audio/mp4", True),
        (b"\xff\xfb\x90\x64" + bytes(100), "a.mp3", "audio/mpeg", True),
        (b"\xff\xf1\x50\x80" + bytes(100), "a.aac", "audio/aac", True),
        (_noise(4096), "audio_record.pcm", "application/octet-stream", True),
        (bytes(4096), "audio.pcm", "application/octet-stream", True),
        (_noise(4096), "blob", "audio/pcm", True),
        (b"\xff\xff\xff\xff" + _noise(4092), "audio.pcm", "application/octet-stream", True),
        (_noise(4096), "x.bin", "application/octet-stream", False),
        (_noise(4096), "x.wav", "audio/wav", False),
        (b"hello world, this is text\n" * 50, "notes.pcm", "application/octet-stream", False),
        (b"\x89PNG\r\n\x1a\n" + _noise(100), "image.pcm", "application/octet-stream", False),
        (b"\xff\xd8\xff\xe0" + _noise(100), "photo.jpg", "image/jpeg", False),
        (b"", "audio.pcm", "application/octet-stream", False),
    ],
)
def test_sniff(head: bytes, filename: str, content_type: str, audio: bool) -> None:
    assert sniff_audio(head, filename, content_type) is audio
