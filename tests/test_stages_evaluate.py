"""Embedded evaluating: dictionary pronunciations, scores on the human clip, the per-word view."""

from __future__ import annotations

import functools
import os
from uuid import uuid4

import anyio
import psutil
import pytest

from speech.base import AudioInput, Evaluation, PermanentStageError, Phoneme, Transcription
from speech.decode import decode_audio
from speech.evaluate import MAX_CELLS, EmbeddedEvaluator, evaluate_text
from speech.pronounce import cmu_dictionary, pronounce, spell, words_of
from speech.recognise import recognise_segment
from speech.workers import run_in_worker
from tests.scoring_oracle import long_text, misread
from tests.stages_helpers import HUMAN_CLIP, HUMAN_TEXT

#: Unrelated, and as long as HUMAN_TEXT: 12 words, 34 dictionary phonemes.
UNRELATED_TEXT = "We ran home fast as a cold wind blew down the road"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@functools.cache
def clip_phonemes() -> tuple[Phoneme, ...]:
    audio = decode_audio(AudioInput(HUMAN_CLIP.read_bytes(), "audio/wav", "a.wav"), 300)
    return tuple(recognise_segment(audio.pcm, 0.0)[1])


def _score(text: str) -> Evaluation:
    result = evaluate_text(text, [p.ipa for p in clip_phonemes()])
    assert result is not None
    return result


def test_same_length_texts() -> None:
    for text in (HUMAN_TEXT, UNRELATED_TEXT):
        words = pronounce(text)
        assert (len(words), sum(len(w.ipa) for w in words)) == (12, 34)


def test_the_clip_scores_higher_against_its_own_text() -> None:
    own, unrelated = _score(HUMAN_TEXT), _score(UNRELATED_TEXT)
    assert own.accuracy >= 40
    assert own.accuracy > unrelated.accuracy + 20
    assert own.unknown_words == []
    assert own.reference_ipa.startswith("ɪ t w ɑ z ð ə b ɛ s t")
    best = own.words[3]
    assert (best["word"], best["position"], best["ipa"]) == ("best", 3, "b ɛ s t")
    assert best["correct"] is (best["mistakes"] == 0)


def test_words_and_fallback() -> None:
    assert words_of("Don't STOP — it's 42°, ok?") == ["don't", "stop", "it's", "four", "two", "ok"]
    assert spell("blorptish") == ("B", "L", "AO", "R", "P", "T", "IH", "SH")
    assert spell("zzz") == ("Z",)
    shine = pronounce("glimbershine")[0]
    assert not shine.known
    assert shine.ipa == ("ɡ", "l", "ɪ", "m", "b", "ɝ", "ʃ", "ɪ", "n")


def test_unknown_words_are_listed_once() -> None:
    result = evaluate_text("the glimbershine of glimbershine", ["ð", "ə"])
    assert result is not None
    assert result.unknown_words == ["glimbershine"]
    assert [w["word"] for w in result.words] == ["the", "glimbershine", "of", "glimbershine"]


def test_a_text_without_words_has_nothing_to_score() -> None:
    assert evaluate_text("... !? --", ["ə"]) is None


@pytest.mark.anyio
async def test_embedded_evaluator() -> None:
    evaluator = EmbeddedEvaluator(anyio.CapacityLimiter(1))
    assert evaluator.applies("some text", None)
    assert evaluator.applies("some text", uuid4())
    assert not evaluator.applies("  ", uuid4())
    assert not evaluator.applies(None, uuid4())
    transcription = Transcription("it", phonemes=(Phoneme("ɪ", 0, 0.1), Phoneme("t", 0.1, 0.2)))
    result = await evaluator.evaluate(transcription, "It!", None)
    assert result is not None
    assert result.accuracy == 100.0
    assert result.mistakes == []
    assert await evaluator.evaluate(transcription, None, uuid4()) is None


def _dictionary_in_worker() -> tuple[int, tuple[int, int]]:
    """This worker's pid, and how often its dictionary was loaded and is held."""
    info = cmu_dictionary.cache_info()
    return os.getpid(), (info.misses, info.currsize)


def _transcription(ipa: list[str]) -> Transcription:
    return Transcription("", phonemes=tuple(Phoneme(t, 0, 0) for t in ipa))


@pytest.mark.anyio
async def test_evaluation_runs_in_an_engine_worker_that_loads_the_dictionary_once() -> None:
    cmu_dictionary.cache_clear()
    limiter = anyio.CapacityLimiter(1)
    evaluator = EmbeddedEvaluator(limiter)
    with anyio.fail_after(60):
        for text in (HUMAN_TEXT, UNRELATED_TEXT):
            result = await evaluator.evaluate(_transcription(["ɪ", "t"]), text, None)
            assert result is not None
        # One worker at a time, and anyio hands out the one idle last: the evaluations' worker.
        pid, worker_cache = await run_in_worker(_dictionary_in_worker, limiter=limiter, what="x")
    assert pid != os.getpid()
    assert cmu_dictionary.cache_info().currsize == 0  # never loaded in the server process
    assert worker_cache == (1, 1)  # loaded once, for both


@pytest.mark.anyio
async def test_cancelling_a_long_evaluation_kills_its_worker() -> None:
    reference = [t for w in pronounce(long_text(10_000)) for t in w.ipa]
    actual = misread(reference, 4)[: MAX_CELLS // len(reference)]
    limiter = anyio.CapacityLimiter(1)
    with anyio.fail_after(60):
        pid, _ = await run_in_worker(_dictionary_in_worker, limiter=limiter, what="x")
    evaluator = EmbeddedEvaluator(limiter)
    scope = anyio.CancelScope()
    finished = anyio.Event()
    results: list[Evaluation | None] = []

    async def evaluate() -> None:
        try:
            with scope:
                results.append(
                    await evaluator.evaluate(_transcription(actual), long_text(10_000), None)
                )
        finally:
            finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(evaluate)
        await anyio.wait_all_tasks_blocked()  # the request is with the (warm) worker
        scope.cancel()
        with anyio.fail_after(5):  # the evaluation alone takes seconds
            await finished.wait()
    assert results == []
    assert not psutil.pid_exists(pid)  # the work stopped with its worker


@pytest.mark.anyio
async def test_too_long_to_compare_is_a_permanent_failure_from_the_worker() -> None:
    evaluator = EmbeddedEvaluator(anyio.CapacityLimiter(1))
    text = long_text(10_000)
    reference = [t for w in pronounce(text) for t in w.ipa]
    actual = _transcription(misread(reference, 5)[: MAX_CELLS // len(reference) + 1])
    with anyio.fail_after(60), pytest.raises(PermanentStageError, match="too long to compare"):
        await evaluator.evaluate(actual, text, None)
