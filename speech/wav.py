"""Normalised audio to and from WAV, the format the remote engines exchange."""

from __future__ import annotations

import io
import wave

from .base import SAMPLE_RATE


def to_wav(pcm: bytes) -> bytes:
    """16 kHz mono s16le PCM in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return buffer.getvalue()


def from_wav(data: bytes) -> bytes:
    """The PCM of a 16 kHz mono 16-bit WAV; ValueError for anything else."""
    try:
        with wave.open(io.BytesIO(data), "rb") as source:
            shape = (source.getframerate(), source.getnchannels(), source.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise ValueError(f"expected 16 kHz mono 16-bit WAV, got {shape}")
            return source.readframes(source.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from exc
