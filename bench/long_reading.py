"""Cost and memory of scoring a long reading.

The human reading of tests/data (44 s) and the same audio seven times over (310 s),
transcribed for real (the words that cut the pieces), then evaluated against their
text and against the text repeated until it is over 10,000 characters (a reading that
stops before the text ends). Each evaluation runs in a fresh process: CPU seconds of
``evaluate_reading`` per audio second, and the process's peak resident memory while
loading the model (on a second of the audio) and while evaluating. The 44 s reading
is also evaluated without a transcript (aligned whole). And the 310 s reading through
both stages as the service runs them (the transcriber's posteriors handed to the
evaluator), in a fresh process: each stage's CPU, the network's runs, the posteriors'
size and the peak memory. Prints JSON; ``main`` is also called by
bench/pronunciation.py.

    python bench/long_reading.py
    python bench/long_reading.py --pipeline   # only the 310 s reading through both stages
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from speech.base import SAMPLE_RATE, NormalisedAudio, Word  # noqa: E402
from speech.evaluate import EmbeddedEvaluator, evaluate_reading  # noqa: E402
from speech.phone_model import FRAME_SAMPLES, cuts, phone_model, samples_of  # noqa: E402
from speech.recognise import EmbeddedTranscriber, recognise_segment  # noqa: E402
from speech.workers import run_here  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402

REPEATS = 7
LONG_TEXT_CHARACTERS = 10_000


def _recognised(pcm: bytes) -> tuple[list[Word], float]:
    """The recogniser's words (as the service gets them: 30 s pieces) and its CPU seconds."""
    started = time.process_time()
    bounds = [f * FRAME_SAMPLES for f in cuts(samples_of(pcm))]  # quiet points, <= 26 s apart
    words: list[Word] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        words += recognise_segment(pcm[2 * a : 2 * b], a / SAMPLE_RATE)[0]
    return words, time.process_time() - started


def _peak_kib() -> int:
    """The process's peak resident memory since the last ``_reset_peak`` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    # "5" resets the peak to the current resident set (proc(5), clear_refs).
    Path("/proc/self/clear_refs").write_text("5")


def _evaluate(pcm: bytes, text: str, words: list[Word]) -> dict[str, Any]:
    """In a fresh process: load the models on a second of the audio, then evaluate."""
    evaluate_reading(pcm[: 2 * SAMPLE_RATE], "it was", [], None)
    loaded = _peak_kib()
    _reset_peak()
    started = time.process_time()
    result = evaluate_reading(pcm, text, words, None)
    cpu = time.process_time() - started
    assert result is not None
    seconds = len(pcm) / 2 / SAMPLE_RATE
    return {
        "audio_seconds": round(seconds, 1),
        "text_characters": len(text),
        "method": result.method,
        "cpu_seconds": round(cpu, 2),
        "cpu_per_audio_second": round(cpu / seconds, 3),
        "peak_rss_while_evaluating_mib": round(_peak_kib() / 1024, 1),
        "peak_rss_loading_mib": round(loaded / 1024, 1),
        "accuracy": result.accuracy,
        "completeness": result.completeness,
        "words_correct": sum(w["verdict"] == "correct" for w in result.words),
        "words": len(result.words),
    }


def _fresh(pcm: bytes, text: str, words: list[Word]) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_evaluate, pcm, text, words).result()


async def _ignore(fraction: float) -> None:
    """Progress reports, not looked at here."""


def _stages(pcm: bytes, text: str) -> dict[str, Any]:
    """In a fresh process: both stages as the service runs them, here (``run_here``)."""
    evaluate_reading(pcm[: 2 * SAMPLE_RATE], "it was", [], None)  # loads the models
    loaded = _peak_kib()
    _reset_peak()
    audio = NormalisedAudio(pcm, len(pcm) / 2 / SAMPLE_RATE)
    limiter = anyio.CapacityLimiter(1)
    model = phone_model()
    runs, started = model.runs, time.process_time()
    heard = anyio.run(EmbeddedTranscriber(limiter, run=run_here).transcribe, audio, "en", _ignore)
    transcribing = time.process_time() - started
    evaluator = EmbeddedEvaluator(limiter, run=run_here)
    result = anyio.run(evaluator.evaluate, heard, text, None, audio)
    evaluating = time.process_time() - started - transcribing
    assert result is not None
    assert heard.posteriors is not None
    return {
        "audio_seconds": round(audio.duration, 1),
        "transcribing_cpu_per_audio_second": round(transcribing / audio.duration, 3),
        "evaluating_cpu_per_audio_second": round(evaluating / audio.duration, 3),
        "network_runs": model.runs - runs,
        "posteriors_mib": round(heard.posteriors.log_probs.nbytes / 2**20, 1),
        "posteriors_pickled_mib": round(len(pickle.dumps(heard.posteriors)) / 2**20, 1),
        "peak_rss_mib": round(_peak_kib() / 1024, 1),
        "peak_rss_loading_mib": round(loaded / 1024, 1),
        "accuracy": result.accuracy,
        "words_correct": sum(w["verdict"] == "correct" for w in result.words),
        "words": len(result.words),
    }


def pipeline() -> dict[str, Any]:
    """The 310 s reading through both stages, sharing the posteriors, in a fresh process."""
    long = corpus.passage_pcm() * REPEATS
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        text = " ".join([corpus.PASSAGE] * REPEATS)
        return pool.submit(_stages, long, text).result()


def _long_text() -> str:
    repeats = -(-LONG_TEXT_CHARACTERS // (len(corpus.PASSAGE) + 1))
    return " ".join([corpus.PASSAGE] * repeats)


def main() -> dict[str, Any]:
    short = corpus.passage_pcm()
    long = short * REPEATS
    short_words, short_cpu = _recognised(short)
    long_words, long_cpu = _recognised(long)
    seconds = len(long) / 2 / SAMPLE_RATE
    return {
        "recogniser_cpu_per_audio_second": round(long_cpu / seconds, 3),
        "with_transcript": {
            "44s_its_text": _fresh(short, corpus.PASSAGE, short_words),
            "310s_its_text": _fresh(long, " ".join([corpus.PASSAGE] * REPEATS), long_words),
            "310s_10000_characters": _fresh(long, _long_text(), long_words),
        },
        "without_transcript": {"44s_its_text": _fresh(short, corpus.PASSAGE, [])},
        "short_recogniser_cpu_seconds": round(short_cpu, 2),
        "310s_both_stages_sharing_posteriors": pipeline(),
    }


if __name__ == "__main__":
    print(json.dumps(pipeline() if sys.argv[1:] == ["--pipeline"] else main(), indent=2))
