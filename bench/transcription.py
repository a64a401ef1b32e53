"""Word error rate and CPU cost of the embedded transcriber, the previous engine beside.

On the 44 s human reading (tests/data/two_cities_16k.flac), the same reading through
the telephone band (resampled to 8 kHz and back), and the passage spoken by
espeak-ng voices: word error rate (words lower-cased, punctuation dropped) and CPU
seconds per audio second on one core, for Whisper (beam 1 and 5), the phoneme
model, and pocketsphinx (the previous engine, one utterance, when it is still
installed). The CPU figures are medians of ``RUNS`` runs after a warm-up that loads
the models; the engines run in this process, one thread each, as in a worker. The
resident memory is a worker's: a fresh process that loads both models and transcribes
the reading. The transcribing stage (Whisper as configured by default, the phoneme
model, the word times aligned on its posteriors) is measured whole too, and its word times against
pocketsphinx's forced alignment of the passage, beside Whisper's own (DTW) ones and
beside the phoneme model run on each Whisper window alone (as the stage did before it
ran the model once on the whole recording, to hand the posteriors on).
Prints one JSON object.

    nice -n 10 .venv/bin/python bench/transcription.py
    nice -n 10 .venv/bin/python bench/transcription.py --word-times   # those alone
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speech.base import SAMPLE_RATE, AudioInput, NormalisedAudio, Word  # noqa: E402
from speech.decode import decode_audio  # noqa: E402
from speech.phone_model import phone_model, samples_of  # noqa: E402
from speech.recognise import EmbeddedTranscriber, default_config, recognise_window  # noqa: E402
from speech.whisper_engine import PROMPT_TOKENS, transcribe_window  # noqa: E402
from speech.whisper_model import WhisperConfig  # noqa: E402
from speech.workers import run_here  # noqa: E402
from tests.pron_corpus import PASSAGE, passage_pcm  # noqa: E402
from tests.word_errors import word_errors, words_of  # noqa: E402

RUNS = 3
VOICES = ("en-us", "en-gb", "en-gb-x-rp")


def whisper_text(pcm: bytes, config: WhisperConfig) -> str:
    """The transcript, window by window as ``EmbeddedTranscriber`` walks the audio."""
    samples = samples_of(pcm)
    window = 30 * SAMPLE_RATE
    texts: list[str] = []
    prompt: list[int] = []
    start = 0
    while start < len(samples):
        end = min(start + window, len(samples))
        heard = transcribe_window(
            samples[start:end], start / SAMPLE_RATE, config, "en", prompt[-PROMPT_TOKENS:],
            end == len(samples),
        )  # fmt: skip
        texts += [s.text for s in heard.segments]
        prompt = [*prompt, *heard.tokens] if heard.tokens else []
        start += heard.consumed
    return " ".join(texts)


def phones_text(pcm: bytes) -> str:
    return " ".join(p.ipa for p in phone_model().phones(samples_of(pcm)))


async def _ignore(fraction: float) -> None:
    """Progress reports, not looked at here."""


def stage_words(pcm: bytes, config: WhisperConfig) -> list[Word]:
    """The transcribing stage's words (Whisper, phonemes, word times), run in this process."""
    transcriber = EmbeddedTranscriber(anyio.CapacityLimiter(1), config=config, run=run_here)
    audio = NormalisedAudio(pcm, len(pcm) / 2 / SAMPLE_RATE)
    return list(anyio.run(transcriber.transcribe, audio, "en", _ignore).words)


def window_words(pcm: bytes, config: WhisperConfig) -> list[Word]:
    """The words timed on the phoneme model run on each Whisper window alone (before)."""
    words: list[Word] = []
    prompt: list[int] = []
    start, total = 0, len(pcm) // 2
    while start < total:
        end = min(start + 30 * SAMPLE_RATE, total)
        heard, _ = recognise_window(
            pcm[2 * start : 2 * end], start / SAMPLE_RATE, config, "en",
            prompt[-PROMPT_TOKENS:], end == total, len(words),
        )  # fmt: skip
        words += heard.words
        prompt = [*prompt, *heard.tokens] if heard.tokens else []
        start += heard.consumed
    return words


def dtw_words(pcm: bytes, config: WhisperConfig) -> list[Word]:
    """Whisper's words with their cross-attention (DTW) times only."""
    samples = samples_of(pcm)
    words: list[Word] = []
    prompt: list[int] = []
    start = 0
    while start < len(samples):
        end = min(start + 30 * SAMPLE_RATE, len(samples))
        heard = transcribe_window(
            samples[start:end], start / SAMPLE_RATE, config, "en", prompt[-PROMPT_TOKENS:],
            end == len(samples),
        )  # fmt: skip
        words += heard.words
        prompt = [*prompt, *heard.tokens] if heard.tokens else []
        start += heard.consumed
    return words


def reference_times(pcm: bytes) -> list[tuple[float, float]] | None:
    """Each passage word's span by pocketsphinx's forced alignment (an aligner independent
    of both methods compared); None once pocketsphinx is uninstalled."""
    try:
        from pocketsphinx import Decoder  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    decoder = Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL")
    decoder.set_align_text(" ".join(words_of(PASSAGE)))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [
        (s.start_frame / 100, (s.end_frame + 1) / 100)
        for s in decoder.seg()
        if not s.word.startswith(("<", "[", "+"))
    ]


def time_errors(words: list[Word], reference: list[tuple[float, float]]) -> dict[str, Any]:
    """How far word boundaries are from the reference's (the same words, in order)."""
    if len(words) != len(reference):
        return {"skipped": "the transcript's words are not the passage's"}
    errors = np.array(
        [abs(w.start - a) for w, (a, _) in zip(words, reference, strict=True)]
        + [abs(w.end - b) for w, (_, b) in zip(words, reference, strict=True)]
    )
    half = len(words)
    return {
        "median_start_error_s": round(float(np.median(errors[:half])), 3),
        "median_end_error_s": round(float(np.median(errors[half:])), 3),
        "boundaries_over_100ms_percent": round(100 * float(np.mean(errors > 0.1)), 1),
        "boundaries_over_250ms_percent": round(100 * float(np.mean(errors > 0.25)), 1),
    }


def sphinx() -> Callable[[bytes], str] | None:
    """pocketsphinx's n-gram decoder over the whole recording; None once uninstalled."""
    try:
        from pocketsphinx import Decoder  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def text(pcm: bytes) -> str:
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        return " ".join(s.word for s in decoder.seg() if not s.word.startswith(("<", "[", "+")))

    return text


def measure(engine: Callable[[bytes], str], pcm: bytes, runs: int) -> dict[str, Any]:
    seconds = len(pcm) / 2 / SAMPLE_RATE
    costs, text = [], ""
    for _ in range(runs):
        started = time.process_time()
        text = engine(pcm)
        costs.append(round((time.process_time() - started) / seconds, 4))
    errors = word_errors(words_of(PASSAGE), words_of(text))
    return {
        "wer_percent": round(100 * errors / len(words_of(PASSAGE)), 2),
        "word_errors": errors,
        "cpu_s_per_audio_s": statistics.median(costs),
        "runs": costs,
        "text": text,
    }


def telephone(pcm: bytes) -> bytes:
    """The reading through an 8 kHz channel: resampled down and decoded back to 16 kHz."""
    samples = np.frombuffer(pcm, "<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    down = av.AudioResampler(format="s16", layout="mono", rate=8_000)
    narrow = b"".join(
        f.to_ndarray().astype("<i2").tobytes()
        for f in [*down.resample(frame), *down.resample(None)]
    )
    return decode_audio(
        AudioInput(narrow, "application/octet-stream", "tel.pcm", 8_000, 1), 300
    ).pcm


def espeak(voice: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", PASSAGE],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return decode_audio(AudioInput(wav, "audio/wav", f"{voice}.wav"), 300).pcm


def worker_memory(config: WhisperConfig) -> float:
    """Peak resident MiB of a fresh process that loads both models and runs the
    transcribing stage on the reading, as an engine worker does."""
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from bench.transcription import stage_words;"
        "from speech.whisper_model import WhisperConfig;"
        "from tests.pron_corpus import passage_pcm;"
        f"stage_words(passage_pcm(), WhisperConfig({config.model!r}));"
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (the parent's peak).
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, check=True, text=True
    )
    return round(int(out.stdout.split()[-1]) / 1024, 1)


def main() -> None:
    beam5 = default_config()
    greedy = WhisperConfig(beam5.model, beam_size=1)
    pcm = passage_pcm()
    engines: dict[str, Callable[[bytes], str]] = {
        "whisper_tiny_en_beam1": lambda p: whisper_text(p, greedy),
        "whisper_tiny_en_beam5": lambda p: whisper_text(p, beam5),
    }
    previous = sphinx()
    if previous is not None:
        engines["pocketsphinx_previous"] = previous
    for engine in [*engines.values(), phones_text]:
        engine(pcm)  # warm-up: models loaded, caches filled
    human = {name: measure(engine, pcm, RUNS) for name, engine in engines.items()}
    phones = measure(phones_text, pcm, RUNS)
    stage = measure(lambda p: " ".join(w.text for w in stage_words(p, beam5)), pcm, RUNS)
    reference = reference_times(pcm)
    word_times = (
        {
            "reference": "pocketsphinx forced alignment of the passage",
            "whisper_dtw": time_errors(dtw_words(pcm, beam5), reference),
            "phoneme_model_ctc (used)": time_errors(stage_words(pcm, beam5), reference),
            "phoneme_model_ctc_per_window (before)": time_errors(
                window_words(pcm, beam5), reference
            ),
        }
        if reference is not None
        else None
    )
    narrow = telephone(pcm)
    tel = {name: measure(engine, narrow, 1) for name, engine in engines.items()}
    voices = {
        voice: {name: measure(engine, espeak(voice), 1) for name, engine in engines.items()}
        for voice in VOICES
    }
    report = {
        "audio": "tests/data/two_cities_16k.flac (44.4 s, human)",
        "reference_words": len(words_of(PASSAGE)),
        "human_reading": human,
        "phoneme_model_cpu_s_per_audio_s": phones["cpu_s_per_audio_s"],
        "phoneme_model_runs": phones["runs"],
        "transcribing_stage_cpu_s_per_audio_s": stage["cpu_s_per_audio_s"],
        "transcribing_stage_runs": stage["runs"],
        "transcribing_stage_wer_percent": stage["wer_percent"],
        "word_times": word_times,
        "telephone_8khz": tel,
        "espeak_ng": voices,
        "worker_peak_rss_mib": worker_memory(beam5),
    }
    print(json.dumps(report, ensure_ascii=False))


def word_times() -> None:
    """Only the word times of the transcribing stage, before and now, and Whisper's."""
    pcm, beam5 = passage_pcm(), default_config()
    reference = reference_times(pcm)
    if reference is None:
        raise SystemExit("pocketsphinx is not installed: no reference alignment")
    report = {
        "whisper_dtw": time_errors(dtw_words(pcm, beam5), reference),
        "phoneme_model_ctc (used)": time_errors(stage_words(pcm, beam5), reference),
        "phoneme_model_ctc_per_window (before)": time_errors(window_words(pcm, beam5), reference),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    word_times() if sys.argv[1:] == ["--word-times"] else main()
