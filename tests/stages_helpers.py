"""Helpers for the speech-stage tests: real audio, encoders, and small real HTTP servers."""

from __future__ import annotations

import functools
import io
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette

DATA = Path(__file__).parent / "data"
HUMAN_CLIP = DATA / "two_cities_5s.wav"
HUMAN_TEXT = "It was the best of times, it was the worst of times"
SPOKEN_TEXT = "It was the best of times, it was the worst of times."


def samples_of(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    """Mono int16 samples and the rate of an audio file PyAV reads."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        return np.concatenate(frames).astype(np.int16), int(stream.rate)


@functools.cache
def espeak_wav(text: str = SPOKEN_TEXT) -> bytes:
    """Speech synthesised by espeak-ng (22,050 Hz mono WAV); skips the test without it."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return subprocess.run(
        ["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=30
    ).stdout


def _frame(samples: np.ndarray[Any, Any], rate: int, layout: str = "mono") -> Any:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate = rate
    frame.pts = 0
    return frame


def encode(
    samples: np.ndarray[Any, Any], rate: int, fmt: str, codec: str, out_rate: int | None = None
) -> bytes:
    """Mono int16 samples encoded with PyAV into container ``fmt``."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=out_rate or rate, layout="mono")
        assert isinstance(stream, av.AudioStream), codec
        for packet in [*stream.encode(_frame(samples, rate)), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def android_pcm(samples: np.ndarray[Any, Any], rate: int) -> bytes:
    """Headerless s16le at 44,100 Hz in stereo, as the ILPS Android app records."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=44_100)
    out = [*resampler.resample(_frame(samples, rate)), *resampler.resample(None)]
    return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in out)


def wav_of(samples: np.ndarray[Any, Any], rate: int) -> bytes:
    return encode(samples, rate, "wav", "pcm_s16le")


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free local port in a thread; yield its base URL."""
    # Listening before the server starts: early connections wait in the backlog, so
    # nothing needs to wait for its start-up.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", http="h11", ws="none",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
