"""The CTC phoneme recogniser that the hama wheel ships: per-frame log-posteriors over IPA.

hama 1.7.0 (Apache-2.0, 4.7 MB of weights inside the wheel, run by its own native
engine with numpy) maps 16 kHz audio to one distribution every 20 ms over 191
tokens: IPA phones, a word boundary ``<wb>`` and the CTC blank. Its network returns
at most ``MAX_FRAMES`` frames (30 s), so longer audio is cut at its quietest points
into stretches of at most ``CORE_FRAMES``, each run with ``MARGIN_FRAMES`` of audio on
either side (the network sees context across the cut; the margins' frames are
dropped), and the stretches' frames are joined. Frames keep their absolute index:
frame ``k`` is centred on sample ``k * FRAME_SAMPLES`` however the audio was cut.

Loaded once per process (``phone_model()``): the engine worker processes. The
transcribing stage computes a recording's posteriors once (``heard``) and hands them to
the evaluating stage, which takes them only when they were made as it would make them
(``usable``): the same model, the same cuts, every frame.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import SAMPLE_RATE, Posteriors

#: Input samples per output frame (a 160-sample hop, subsampled by 2): 20 ms.
FRAME_SAMPLES = 320
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
#: The most frames the network returns for one input (it cuts the rest off).
MAX_FRAMES = 1500
#: The longest stretch kept from one run, and the context run on either side of it:
#: 26 s + 2 x 1.5 s stays within the network's 30 s.
CORE_FRAMES = 1300
MARGIN_FRAMES = 75
#: A cut is made no earlier than this into a stretch, at its quietest 100 ms after it.
MIN_CORE_FRAMES = 750
QUIET_FRAMES = 5
#: A decoded phone keeps the blank frames after it, up to this many (60 ms): CTC
#: posteriors are peaky, the sound itself lasts longer than its spike.
TAIL_FRAMES = 3

#: What made a set of posteriors: a change to the model or to the cutting changes it.
WINDOWING = (
    f"hama {importlib.metadata.version('hama')} ASRModel; {FRAME_SAMPLES}-sample frames; "
    f"stretches of {MIN_CORE_FRAMES}-{CORE_FRAMES} frames cut at the quietest "
    f"{QUIET_FRAMES}, {MARGIN_FRAMES} frames of context; whole up to {MAX_FRAMES}"
)

LogProbs = NDArray[np.float32]
Samples = NDArray[np.float32]


@dataclass(frozen=True)
class HeardPhone:
    """One phone of the free (greedy) decoding, frames ``[start, end)``."""

    ipa: str
    start: int
    end: int
    #: The mean posterior probability of the phone on the frames where it was the best.
    confidence: float
    #: The model put a word boundary between this phone and the one before it.
    word_start: bool

    @property
    def start_seconds(self) -> float:
        return round(self.start * FRAME_SECONDS, 3)

    @property
    def end_seconds(self) -> float:
        return round(self.end * FRAME_SECONDS, 3)


def samples_of(pcm: bytes) -> Samples:
    """16-bit little-endian PCM as float32 in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def frame_count(samples: int) -> int:
    """Frames the network gives ``samples`` of audio (when under 30 s)."""
    return samples // FRAME_SAMPLES + 1


def _quietest(samples: Samples, first: int, last: int) -> int:
    """The frame in ``[first, last)`` at the middle of the quietest ``QUIET_FRAMES``."""
    region = samples[first * FRAME_SAMPLES : last * FRAME_SAMPLES]
    frames = len(region) // FRAME_SAMPLES
    energy = np.square(region[: frames * FRAME_SAMPLES].reshape(frames, FRAME_SAMPLES)).mean(1)
    # "valid": a window running past the region's edge would look quieter than it is.
    smoothed = np.convolve(energy, np.ones(QUIET_FRAMES), mode="valid")
    return first + QUIET_FRAMES // 2 + int(np.argmin(smoothed))


def cuts(samples: Samples) -> list[int]:
    """The frames the audio is cut at, first (0) and last (the frame count) included."""
    total = frame_count(len(samples))
    bounds = [0]
    while total - bounds[-1] > MAX_FRAMES - MARGIN_FRAMES:
        start = bounds[-1]
        bounds.append(_quietest(samples, start + MIN_CORE_FRAMES, start + CORE_FRAMES))
    bounds.append(total)
    return bounds


class PhoneModel:
    """hama's phoneme recogniser, loaded once: posteriors and a free decoding."""

    def __init__(self) -> None:
        # Imported here (its native library loads on import), untyped: hama has no stubs.
        hama: Any = importlib.import_module("hama")
        self._model = hama.ASRModel()
        #: The output tokens, by index: IPA phones, then ``<wb>`` and ``<blank>``.
        self.vocabulary: tuple[str, ...] = tuple(self._model.decoder_tokens)
        self.blank: int = self.vocabulary.index("<blank>")
        self.word_boundary: int = self.vocabulary.index("<wb>")
        self.frame_seconds = FRAME_SECONDS
        #: Times the network ran in this process (a seam for tests and benches: a task
        #: should run it on its audio once).
        self.runs = 0

    def _run(self, samples: Samples) -> LogProbs:
        session: Any = self._model.session
        feeds = {
            "waveform": np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1),
            "waveform_lengths": np.array([len(samples)], dtype=np.int64),
        }
        self.runs += 1
        log_probs, lengths = session.run(["log_probs", "out_lengths"], feeds)
        out: LogProbs = log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])]
        return out

    def posteriors(self, samples: Samples) -> LogProbs:
        """Log-probabilities (frames x vocabulary) of 16 kHz mono audio of any length."""
        if len(samples) == 0:
            return np.zeros((0, len(self.vocabulary)), dtype=np.float32)
        bounds = cuts(samples)
        if len(bounds) == 2:
            return self._run(samples)
        parts: list[LogProbs] = []
        for first, last in zip(bounds, bounds[1:], strict=False):
            begin = max(first - MARGIN_FRAMES, 0)
            end = last + MARGIN_FRAMES
            window = self._run(samples[begin * FRAME_SAMPLES : end * FRAME_SAMPLES])
            parts.append(window[first - begin : last - begin])
        joined: LogProbs = np.concatenate(parts)
        return joined

    def heard(self, samples: Samples) -> Posteriors:
        """The posteriors of a whole recording, with what made them, to hand on."""
        return Posteriors(self.posteriors(samples), self.frame_seconds, WINDOWING)

    def usable(self, posteriors: Posteriors | None, samples: int) -> LogProbs | None:
        """The log-probabilities of ``posteriors`` if this model, cutting ``samples`` of
        audio as it does, would have computed them; else None (compute them again)."""
        if posteriors is None or posteriors.windowing != WINDOWING:
            return None
        frames = frame_count(samples) if samples else 0
        log_probs = posteriors.log_probs
        if log_probs.dtype != np.float32 or log_probs.shape != (frames, len(self.vocabulary)):
            return None
        return log_probs

    def decode(self, log_probs: LogProbs) -> list[HeardPhone]:
        """The best token of each frame, repeats merged, blanks and boundaries dropped."""
        best = np.argmax(log_probs, axis=1) if len(log_probs) else np.zeros(0, np.int64)
        phones: list[HeardPhone] = []
        boundary = True
        k, frames = 0, len(best)
        while k < frames:
            token = int(best[k])
            run_end = k + 1
            while run_end < frames and best[run_end] == token:
                run_end += 1
            if token == self.word_boundary:
                boundary = True
            elif token != self.blank:
                tail = run_end
                while tail < frames and tail - run_end < TAIL_FRAMES and best[tail] == self.blank:
                    tail += 1
                confidence = float(np.exp(log_probs[k:run_end, token]).mean())
                phones.append(
                    HeardPhone(self.vocabulary[token], k, tail, round(confidence, 3), boundary)
                )
                boundary = False
            k = run_end
        return phones

    def phones(self, samples: Samples) -> list[HeardPhone]:
        """The free decoding of 16 kHz mono audio."""
        return self.decode(self.posteriors(samples))


@functools.cache
def phone_model() -> PhoneModel:
    """The process's model (the engine workers load it on first use and keep it)."""
    return PhoneModel()
