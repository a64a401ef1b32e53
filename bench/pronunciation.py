"""How far the embedded pronunciation scores can be trusted, on the evaluation corpus.

The corpus (tests/pron_corpus.py, provenance in tests/data/README.md): the human
reading cut into clauses; the same with k words of the text replaced; espeak-ng
voices, correct and with one sound substituted; one clause in every codec and in the
telephone band; readings longer than their text, and of another text. Every recording
goes through the embedded pipeline as the service runs it: Whisper's words
(``recognise_segment``), then ``evaluate_reading`` (the phoneme model's posteriors,
the CTC alignment, GOP, verdicts). A word is "flagged" when its verdict is not
``correct``. Prints JSON.

The headline figures are on the held-out split (the odd clauses; the espeak-ng voices of
``corpus.VOICES``), which the calibration (speech/gop_thresholds.py, from
bench/pron_calibrate.py on the even clauses and other voices) never saw; the same
figures on the calibration split are under ``calibration_split``. The previous method
(pocketsphinx) is gone from this tree: its figures come from running this script at
the base commit in a temporary ``git worktree`` (bench/README.md).

    python bench/pronunciation.py            # BENCH_QUICK=1: fewer renderings, no long readings
    python bench/pronunciation.py --cost     # only the whole pipeline's cost (a few minutes)
    BENCH_LONG=0 python bench/pronunciation.py   # all but bench/long_reading.py
    BENCH_CACHE=/tmp/pron_calibrate python bench/pronunciation.py   # model outputs kept there
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import long_reading  # noqa: E402  (bench/long_reading.py, beside this script)

from speech import phone_model  # noqa: E402
from speech.base import SAMPLE_RATE, AudioInput, Evaluation, NormalisedAudio, Word  # noqa: E402
from speech.decode import decode_audio  # noqa: E402
from speech.evaluate import EmbeddedEvaluator, evaluate_reading  # noqa: E402
from speech.phone_model import FRAME_SAMPLES, cuts, samples_of  # noqa: E402
from speech.recognise import EmbeddedTranscriber, recognise_segment  # noqa: E402
from speech.workers import run_here  # noqa: E402
from tests import pron_corpus as corpus  # noqa: E402
from tests.stages_helpers import android_pcm, encode  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
#: A text no clause of the passage reads (the "Please call Stella" elicitation paragraph).
OTHER_TEXT = (
    "Please call Stella. Ask her to bring these things with her from the store: six "
    "spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for "
    "her brother Bob."
)


@functools.lru_cache(maxsize=512)
def transcribed(pcm: bytes) -> tuple[Word, ...]:
    """Whisper's words, as the service gets them (pieces of at most 30 s)."""
    bounds = [f * FRAME_SAMPLES for f in cuts(samples_of(pcm))]  # quiet points, <= 26 s apart
    words: list[Word] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        words += recognise_segment(pcm[2 * a : 2 * b], a / SAMPLE_RATE)[0]
    return tuple(words)


def on_disk(name: str, compute: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``compute`` of a recording, kept in memory and under ``BENCH_CACHE``."""
    folder = Path(os.environ.get("BENCH_CACHE", "/tmp/pron_calibrate"))
    folder.mkdir(parents=True, exist_ok=True)

    @functools.lru_cache(maxsize=2048)
    def cached(pcm: bytes) -> Any:
        path = folder / f"{name}-{hashlib.sha256(pcm).hexdigest()[:24]}.pickle"
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = compute(pcm)
        path.write_bytes(pickle.dumps(value))
        return value

    return cached


def cache_model_outputs() -> None:
    """The model's posteriors and Whisper's words computed once per recording, on disk:
    the figures other than the cost do not depend on when they were computed."""
    global transcribed
    model = phone_model.phone_model()
    original = model.posteriors
    cached = on_disk("posteriors", lambda pcm: original(samples_of(pcm)))
    model.posteriors = lambda samples: cached(  # type: ignore[method-assign]
        (samples * 32768.0).astype("<i2").tobytes()
    )
    transcribed = on_disk("words", transcribed.__wrapped__)  # type: ignore[assignment]


def evaluated(pcm: bytes, text: str) -> Evaluation:
    result = evaluate_reading(pcm, text, transcribed(pcm))
    assert result is not None
    return result


def flags(result: Evaluation) -> list[bool]:
    return [w["verdict"] != "correct" for w in result.words]


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _human(clauses: tuple[int, ...]) -> list[corpus.Recording]:
    recordings = corpus.human_sentences()
    return [recordings[i] for i in clauses]


def native(clauses: tuple[int, ...]) -> dict[str, Any]:
    flagged = words = 0
    accuracies: list[float] = []
    confusions: Counter[str] = Counter()
    for rec in _human(clauses):
        result = evaluated(rec.pcm, rec.text)
        for w in result.words:
            if w["verdict"] != "correct":
                confusions[f"{w['word']}:{w['verdict']}:{w['expected']}->{w['heard']}"] += 1
        flagged += sum(flags(result))
        words += len(result.words)
        accuracies.append(result.accuracy)
    return {
        "words": words,
        "correct_percent": _share(words - flagged, words),
        "median_accuracy": statistics.median(accuracies),
        "accuracies": accuracies,
        "flagged_words": dict(confusions.most_common()),
    }


def replacements(clauses: tuple[int, ...]) -> dict[str, Any]:
    per_k: dict[str, Any] = {}
    for k in (1, 2, 3):
        hits = replaced_total = flagged_total = 0
        for i, rec in zip(clauses, _human(clauses), strict=True):
            for seed in (1, 2) if not QUICK else (1,):
                text, positions = corpus.replaced(rec.text, k, seed * 100 + i)
                flagged = flags(evaluated(rec.pcm, text))
                hits += sum(flagged[p] for p in positions)
                replaced_total += len(positions)
                flagged_total += sum(flagged)
        per_k[str(k)] = {
            "replaced": replaced_total,
            "flagged": flagged_total,
            "recall": _share(hits, replaced_total),
            "precision": _share(hits, flagged_total),
        }
    return per_k


def substitutions(clauses: tuple[int, ...], voices: tuple[str, ...]) -> dict[str, Any]:
    if not corpus.espeak_available():
        return {"skipped": "espeak-ng is not installed"}
    renderings = corpus.espeak_renderings(clauses[:2] if QUICK else clauses, voices)
    false_alarms = correct_words = sound_hits = 0
    by_kind: dict[str, list[int]] = {}
    flagged_correct: Counter[str] = Counter()
    heard_as: Counter[str] = Counter()
    for r in renderings:
        result = evaluated(r.pcm, r.text)
        flagged = flags(result)
        if r.word is None:
            false_alarms += sum(flagged)
            correct_words += len(flagged)
            for w in result.words:
                if w["verdict"] != "correct":
                    flagged_correct[f"{w['word']}:{w['expected']}->{w['heard']}"] += 1
            continue
        kind = by_kind.setdefault(r.substitution or "", [0, 0])
        kind[0] += flagged[r.word]
        kind[1] += 1
        word = result.words[r.word]
        sounds = [p for p in word["phonemes"] if "heard" in p]
        sound_hits += bool(sounds)
        for p in sounds:
            heard_as[f"{r.substitution}: {p['ipa']}->{p['heard'] or '(dropped)'}"] += 1
    substituted = sum(n for _, n in by_kind.values())
    return {
        "renderings": len(renderings),
        "word_recall": _share(sum(h for h, _ in by_kind.values()), substituted),
        "false_alarm_percent": _share(false_alarms, correct_words),
        "by_substitution": {k: _share(h, n) for k, (h, n) in by_kind.items()},
        "sound_recall": _share(sound_hits, substituted),
        "sounds_heard": dict(heard_as.most_common()),
        "false_alarm_words": dict(flagged_correct.most_common(20)),
    }


def _decoded(data: bytes, kind: str, name: str) -> bytes:
    return decode_audio(AudioInput(data, kind, name), 300).pcm


def codecs() -> dict[str, Any]:
    rec = corpus.human_sentences()[corpus.HELD_OUT_CLAUSES[0]]
    samples = corpus.samples(rec.pcm)
    files = {
        "wav": ("audio/wav", encode(samples, SAMPLE_RATE, "wav", "pcm_s16le")),
        "mp3": ("audio/mpeg", encode(samples, SAMPLE_RATE, "mp3", "libmp3lame")),
        "ogg_opus": ("audio/ogg", encode(samples, SAMPLE_RATE, "ogg", "libopus", 48_000)),
        "webm_opus": ("audio/webm", encode(samples, SAMPLE_RATE, "webm", "libopus", 48_000)),
        "m4a_aac": ("audio/mp4", encode(samples, SAMPLE_RATE, "mp4", "aac")),
        "android_pcm": ("application/octet-stream", android_pcm(samples, SAMPLE_RATE)),
    }
    accuracies: dict[str, float] = {}
    correct: dict[str, int] = {}
    for name, (kind, data) in files.items():
        filename = "audio_record.pcm" if name == "android_pcm" else f"a.{name}"
        result = evaluated(_decoded(data, kind, filename), rec.text)
        accuracies[name] = result.accuracy
        correct[name] = sum(not f for f in flags(result))
    values = list(accuracies.values())
    # The telephone band: 8 kHz (what a phone line carries), decoded back to 16 kHz.
    narrow = encode(samples, SAMPLE_RATE, "wav", "pcm_s16le", 8_000)
    phone = evaluated(_decoded(narrow, "audio/wav", "phone.wav"), rec.text)
    return {
        "accuracy": accuracies,
        "words_correct": correct,
        "words": len(rec.text.split()),
        "spread": round(max(values) - min(values), 2),
        "telephone_8khz": {
            "accuracy": phone.accuracy,
            "words_correct": sum(not f for f in flags(phone)),
            "flagged": [w["word"] for w in phone.words if w["verdict"] != "correct"],
        },
    }


def _scores(result: Evaluation, count: int) -> list[float]:
    return [w["score"] for w in result.words[:count]]


def longer_than_text() -> dict[str, Any]:
    """The words read score as they do alone: a clause's audio followed by two more
    clauses (three times longer than its text), and the 44 s reading against 6 words."""
    human = corpus.human_sentences()
    out: dict[str, Any] = {"three_times_longer": []}
    for i in corpus.HELD_OUT_CLAUSES[:4]:
        alone = evaluated(human[i].pcm, human[i].text)
        longer = evaluated(human[i].pcm + human[i + 1 - 2 * (i == 9)].pcm * 2, human[i].text)
        out["three_times_longer"].append(
            {"clause": i, "alone": alone.accuracy, "longer": longer.accuracy,
             "difference": round(longer.accuracy - alone.accuracy, 2),
             "completeness": longer.completeness, "inserted": len(longer.inserted)}
        )  # fmt: skip
    six = "It was the best of times"
    alone = evaluated(human[0].pcm, six)
    whole = evaluated(corpus.passage_pcm(), six)
    out["44s_against_6_words"] = {
        "alone": alone.accuracy,
        "long": whole.accuracy,
        "difference": round(whole.accuracy - alone.accuracy, 2),
        "scores_alone": _scores(alone, 6),
        "scores_long": _scores(whole, 6),
        "completeness": whole.completeness,
        "inserted": len(whole.inserted),
    }
    out["worst_difference"] = max(
        [abs(r["difference"]) for r in out["three_times_longer"]]
        + [abs(out["44s_against_6_words"]["difference"])]
    )
    return out


def other_text() -> dict[str, Any]:
    """Each held-out clause scored against a text it does not read."""
    results = [evaluated(rec.pcm, OTHER_TEXT) for rec in _human(corpus.HELD_OUT_CLAUSES)]
    return {
        "completeness": [r.completeness for r in results],
        "max_completeness": max(r.completeness or 0.0 for r in results),
        "words_correct": [sum(not f for f in flags(r)) for r in results],
    }


async def _ignore(fraction: float) -> None:
    """Progress reports, not looked at here."""


def _task(data: bytes, kind: str, text: str, shared: bool) -> tuple[float, int]:
    """One task's stages as the service runs them (decode, transcribe, evaluate), in this
    process: its CPU seconds and how many times the phoneme network ran. ``shared``: the
    transcription hands its posteriors to the evaluator, as in the service; otherwise the
    evaluator computes them again, as for a resumed task (and for every task before the
    stages shared them)."""
    model = phone_model.phone_model()
    runs, started = model.runs, time.process_time()
    pcm = _decoded(data, kind, f"a.{kind.split('/')[1]}")
    audio = NormalisedAudio(pcm, len(pcm) / 2 / SAMPLE_RATE)
    limiter = anyio.CapacityLimiter(1)

    async def stages() -> None:
        transcriber = EmbeddedTranscriber(limiter, run=run_here)
        heard = await transcriber.transcribe(audio, "en", _ignore)
        if not shared:
            heard = replace(heard, posteriors=None)
        await EmbeddedEvaluator(limiter, run=run_here).evaluate(heard, text, None, audio)

    anyio.run(stages)
    return time.process_time() - started, model.runs - runs


def cost() -> dict[str, Any]:
    """CPU seconds per audio second of the whole embedded pipeline (decode, transcribe:
    Whisper and the phonemes, evaluate) on one core, models loaded, the medians of
    ``BENCH_COST_RUNS`` (3) runs, the two ways taking turns: with the posteriors shared
    between the stages and computed twice. Also the network's runs per task, the
    posteriors' size, and the process's peak memory."""
    flac = (corpus.DATA / "two_cities_16k.flac").read_bytes()
    clip = (corpus.DATA / "two_cities_5s.wav").read_bytes()
    rounds = int(os.environ.get("BENCH_COST_RUNS", "3"))
    _task(clip, "audio/wav", corpus.CLAUSES[0], True)  # loads the models: not measured
    out: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    for name, data, kind, text in (
        ("44s_reading", flac, "audio/flac", corpus.PASSAGE),
        ("5s_clip", clip, "audio/wav", corpus.CLAUSES[0]),
    ):
        runs: dict[str, list[float]] = {"shared": [], "computed_twice": []}
        network: dict[str, int] = {}
        for _ in range(rounds):
            for way in runs:
                seconds, network[way] = _task(data, kind, text, way == "shared")
                runs[way].append(seconds)
        audio_seconds = len(_decoded(data, kind, f"a.{kind.split('/')[1]}")) / 2 / SAMPLE_RATE
        out[name] = {
            way: {
                "cpu_s_per_audio_s": round(statistics.median(r) / audio_seconds, 3),
                "runs": [round(x / audio_seconds, 3) for x in r],
                "network_runs_per_task": network[way],
            }
            for way, r in runs.items()
        }
    frames = phone_model.frame_count(SAMPLE_RATE)
    out["posteriors_bytes_per_audio_second"] = (
        frames * len(phone_model.phone_model().vocabulary) * 4
    )
    out["load_average_after"] = os.getloadavg()[0]
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    out["process_peak_rss_mib"] = round(peak / 1024, 1)
    return out


def main() -> None:
    if sys.argv[1:] == ["--cost"]:
        print(json.dumps({"cost_cpu_seconds_per_audio_second": cost()}, indent=2))
        return
    held = corpus.HELD_OUT_CLAUSES
    report: dict[str, Any] = {"split": "held-out"}
    report["cost_cpu_seconds_per_audio_second"] = cost()  # first: nothing cached
    if os.environ.get("BENCH_CACHE"):
        cache_model_outputs()
    report["native"] = native(held)
    report["replaced_words"] = replacements(held)
    report["substituted_sounds"] = substitutions(held, corpus.VOICES)
    report["codecs"] = codecs()
    report["longer_than_text"] = longer_than_text()
    report["other_text"] = other_text()
    calibration = corpus.CALIBRATION_CLAUSES
    report["calibration_split"] = {
        "native": native(calibration),
        "replaced_words": replacements(calibration),
        # The two voices the calibration used (bench/pron_calibrate.py).
        "substituted_sounds": substitutions(calibration, corpus.CALIBRATION_VOICES[:2]),
    }
    if not QUICK and os.environ.get("BENCH_LONG") != "0":
        report["long_readings"] = long_reading.main()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
