"""The CTC evaluator on real audio (the human clip, espeak-ng renderings, Whisper's words),
its verdicts' consistency on any posteriors (hypothesis), the text normalisation and the
texts service."""

from __future__ import annotations

import functools
from uuid import uuid4

import anyio
import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from speech.base import (
    AudioInput,
    Evaluation,
    NormalisedAudio,
    PermanentStageError,
    Transcription,
    Word,
)
from speech.ctc_align import Emissions, align
from speech.decode import decode_audio
from speech.evaluate import EmbeddedEvaluator, evaluate_reading
from speech.lexicon import entry
from speech.normalise import number_words, spoken_words
from speech.phone_model import phone_model
from speech.recognise import recognise_segment
from speech.texts import IlpsTexts
from speech.transcript_match import match
from speech.verdicts import ReferenceWord, ilps_mistakes, judge
from tests import pron_corpus as corpus
from tests.stages_helpers import HUMAN_CLIP, serve

CLIP_TEXT = "It was the best of times, it was the worst of times"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@functools.cache
def clip() -> bytes:
    return decode_audio(AudioInput(HUMAN_CLIP.read_bytes(), "audio/wav", "clip.wav"), 300).pcm


@functools.cache
def heard(pcm: bytes) -> tuple[Word, ...]:
    """Whisper's words, as the transcribing stage gives them."""
    return tuple(recognise_segment(pcm, 0.0)[0])


def _evaluate(pcm: bytes, text: str, words: tuple[Word, ...] = ()) -> Evaluation:
    result = evaluate_reading(pcm, text, words)
    assert result is not None
    return result


def test_a_native_sentence_is_correct_word_by_word() -> None:
    result = _evaluate(clip(), CLIP_TEXT, heard(clip()))
    assert [w["verdict"] for w in result.words] == ["correct"] * 12
    assert result.accuracy >= 95
    assert result.completeness == 100.0
    assert result.method == "ctc-gop"
    assert result.mistakes == []
    assert result.word_mistakes == []
    assert result.inserted == []
    starts = [w["start"] for w in result.words]
    assert starts == sorted(starts)
    assert 1.0 < starts[0]
    assert result.words[-1]["end"] <= 5.0


def test_a_replaced_word_is_flagged_with_its_time() -> None:
    # "best" (said at about 1.8-2.0 s) replaced in the text by "table".
    result = _evaluate(clip(), CLIP_TEXT.replace("best", "table"), heard(clip()))
    table = result.words[3]
    assert table["word"] == "table"
    assert table["verdict"] == "mispronounced"
    assert table.get("heard_word") == "best"
    assert 1.6 <= table["start"] < table["end"] <= 2.3
    assert [w["index"] for w in result.word_mistakes] == [3]
    assert all(w["verdict"] == "correct" for i, w in enumerate(result.words) if i != 3)


@pytest.mark.skipif(not corpus.espeak_available(), reason="espeak-ng is not installed")
def test_a_substituted_sound_is_flagged_with_what_was_heard_and_its_time() -> None:
    words = ["it", "was", "very", "well", "done"]
    phonemes = [corpus.word_phonemes(w, "en-us") for w in words]
    said = corpus.substitute(phonemes[2], "v", "w")  # very: v said as w
    assert said is not None
    pcm = corpus.speak([*phonemes[:2], said, *phonemes[3:]], "en-us")
    right = _evaluate(corpus.speak(phonemes, "en-us"), " ".join(words))
    wrong = _evaluate(pcm, " ".join(words))
    assert right.words[2]["verdict"] == "correct"
    word = wrong.words[2]
    assert word["verdict"] == "mispronounced"
    sound = next(p for p in word["phonemes"] if "heard" in p)
    assert (sound["ipa"], sound["heard"]) == ("v", "w")
    assert word["start"] <= sound["start"] < sound["end"] <= word["end"]
    replacements = [m for m in wrong.mistakes if m["type"] == "Replacement"]
    assert any((m["reference"]["value"], m["actual"]["value"]) == ("v", "w") for m in replacements)


def test_a_reading_of_another_text_is_recognised_as_such() -> None:
    text = "Please call Stella and ask her to bring these things with her from the store"
    result = _evaluate(clip(), text, heard(clip()))
    assert result.completeness is not None
    assert result.completeness <= 20
    assert all(w["verdict"] == "missed" for w in result.words)
    assert result.accuracy == 0.0
    assert result.other_text


def test_speech_past_the_end_of_the_text_is_inserted_not_scored() -> None:
    alone = _evaluate(clip()[: 2 * 16_000 * 296 // 100], "It was the best of times", ())
    longer = _evaluate(clip(), "It was the best of times", heard(clip()))
    assert [w["verdict"] for w in longer.words] == ["correct"] * 6
    assert abs(longer.accuracy - alone.accuracy) <= 3
    assert longer.completeness == 100.0
    assert not longer.other_text
    assert [w["word"] for w in longer.inserted] == ["it", "was", "the", "worst", "of", "times"]
    assert {m["type"] for m in longer.word_mistakes} == {"inserted"}


def test_a_reading_that_stops_early_leaves_the_rest_missed() -> None:
    result = _evaluate(clip(), CLIP_TEXT + " it was the age of wisdom", heard(clip()))
    assert [w["verdict"] for w in result.words[-6:]] == ["missed"] * 6
    assert result.completeness == 66.67
    assert result.accuracy >= 95


@pytest.mark.anyio
async def test_the_evaluator_aligns_in_a_worker_when_it_has_the_audio() -> None:
    evaluator = EmbeddedEvaluator(anyio.CapacityLimiter(1))
    audio = NormalisedAudio(clip(), len(clip()) / 32_000)
    with anyio.fail_after(60):
        result = await evaluator.evaluate(Transcription(""), CLIP_TEXT, None, audio)
    assert result is not None
    assert result.method == "ctc-gop"
    assert len(result.words) == 12


# The verdicts on any posteriors: one source of truth.

_TEXTS = st.lists(st.sampled_from(["it", "was", "the", "best", "of", "times", "think", "very"]),
                  min_size=1, max_size=6)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(_TEXTS, st.integers(4, 80), st.integers(0, 2**32 - 1), st.floats(0.5, 6.0))
def test_verdicts_scores_and_mistakes_never_contradict_each_other(
    texts: list[str], frames: int, seed: int, peak: float
) -> None:
    model = phone_model()
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, peak, size=(frames, len(model.vocabulary)))
    logits[:, model.blank] += peak
    log_probs = (logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)).astype(np.float32)
    emissions = Emissions(log_probs, model.vocabulary)
    references = [ReferenceWord(t, t, entry(t)) for t in texts]
    alignment = align([r.entry for r in references], emissions)
    verdicts = judge(
        references, alignment, emissions, model.decode(log_probs), match(texts, ()), {}, False
    )
    flagged_sounds = 0
    for word in verdicts.words:
        sounds = word["phonemes"]
        bad = [p for p in sounds if "heard" in p]
        if word["verdict"] == "missed":
            assert sounds == []
            assert word["score"] == 0.0
            assert word["mistakes"] == len(word["expected"].split())
            flagged_sounds += len(word["expected"].split())
            continue
        assert (word["verdict"] == "correct") == (not bad)
        assert all(p["score"] < 50 for p in bad)
        assert all(p["score"] >= 50 for p in sounds if "heard" not in p)
        assert word["score"] == round(sum(p["score"] for p in sounds) / len(sounds), 1)
        assert word["mistakes"] == len(bad)
        assert word["correct"] == (word["verdict"] == "correct")
        assert word["start"] <= word["end"]
        flagged_sounds += len(bad)
    ilps, reference = ilps_mistakes(verdicts.words)
    assert len(ilps) == flagged_sounds
    assert len(reference.split()) == sum(
        len(w["phonemes"]) or len(w["expected"].split()) for w in verdicts.words
    )
    wrong = {m["index"] for m in verdicts.mistakes if m["type"] != "inserted"}
    assert wrong == {w["index"] for w in verdicts.words if w["verdict"] != "correct"}
    read = [w for w in verdicts.words if w["verdict"] != "missed"]
    assert verdicts.completeness == round(100 * len(read) / len(texts), 2)
    if read:
        assert verdicts.accuracy == round(sum(w["score"] for w in read) / len(read), 2)


def test_accents_and_weak_forms_are_pronunciations_not_mistakes() -> None:
    def said(word: str) -> set[str]:
        return {" ".join(min(s.accepted) for s in v) for v in entry(word).variants}

    short = entry("short")
    assert [s.phone for s in short.variants[0]] == ["SH", "AO", "R", "T"]  # dictionary first
    assert ["SH", "AO", "T"] in [[s.phone for s in v] for v in short.variants]  # non-rhotic
    assert "i v l" in said("evil")  # a syllabic l
    assert {"ɐ v", "ɐ", "ɑ f"} <= said("of")  # weak forms
    assert not entry("glimbershine").known
    # A learner substitution is never an accepted sound of what it replaces.
    assert "s" not in entry("think").variants[0][0].accepted
    assert "i" not in entry("it").variants[0][0].accepted


def test_numbers_and_abbreviations_are_read_as_words() -> None:
    assert [w.text for w in spoken_words("Dr. Smith paid $42 on the 21st, e.g. 1984!")] == [
        "doctor", "smith", "paid", "forty", "two", "dollars", "on", "the", "twenty",
        "first", "for", "example", "nineteen", "eighty", "four",
    ]  # fmt: skip
    assert number_words("1,204") == ["one", "thousand", "two", "hundred", "four"]
    assert number_words("3.14") == ["three", "point", "one", "four"]
    assert number_words("50%") == ["fifty", "percent"]
    assert spoken_words("Don't STOP")[0].text == "don't"
    assert spoken_words("42")[0].written == "42"


def test_a_word_outside_the_dictionary_is_marked() -> None:
    result = _evaluate(clip(), CLIP_TEXT + " glimbershine")
    assert result.unknown_words == ["glimbershine"]
    assert result.words[-1]["known"] is False


# The texts service.


def _texts_app(texts: dict[str, str]) -> Starlette:
    async def text(request: Request) -> JSONResponse:
        text_id = request.path_params["text_id"]
        if text_id not in texts:
            return JSONResponse({"detail": "Text not found."}, 404)
        body = {"id": text_id, "title": "t", "value": texts[text_id], "transcription": ""}
        return JSONResponse(body)

    return Starlette(routes=[Route("/{text_id}", text)])


@pytest.mark.anyio
async def test_a_text_id_is_scored_with_the_texts_service_text() -> None:
    known, unknown = uuid4(), uuid4()
    with serve(_texts_app({str(known): CLIP_TEXT})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            evaluator = EmbeddedEvaluator(anyio.CapacityLimiter(1), IlpsTexts(client))
            assert evaluator.applies(None, known)
            assert not EmbeddedEvaluator(anyio.CapacityLimiter(1)).applies(None, known)
            audio = NormalisedAudio(clip(), len(clip()) / 32_000)
            with anyio.fail_after(60):
                result = await evaluator.evaluate(Transcription(""), None, known, audio)
                assert result is not None
                assert len(result.words) == 12
                with pytest.raises(PermanentStageError, match="has no text"):
                    await evaluator.evaluate(Transcription(""), None, unknown, audio)
