"""Long readings aligned in pieces (speech/long_reading.py): the plan, pure and on the
real 44 s reading; the evaluation of a reading longer than one piece may be."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speech.base import SAMPLE_RATE, Word
from speech.ctc_align import Emissions, align
from speech.evaluate import evaluate_reading
from speech.lexicon import entry
from speech.long_reading import Piece, align_in_pieces, plan
from speech.normalise import spoken_words
from speech.phone_model import FRAME_SAMPLES, cuts, phone_model, samples_of
from speech.recognise import recognise_segment
from speech.transcript_match import HeardWord, heard_words, match
from speech.verdicts import ReferenceWord, judge
from tests import pron_corpus as corpus


def _said(texts: list[str], pause: float = 0.3, length: float = 0.4) -> list[HeardWord]:
    """Heard words said one after another, ``pause`` seconds apart."""
    words, t = [], 0.5
    for text in texts:
        words.append(HeardWord(text, round(t, 3), round(t + length, 3)))
        t += length + pause
    return words


def _check_cover(pieces: list[Piece], words: int, samples: int, longest: float) -> None:
    assert pieces[0].first == 0
    assert pieces[0].start == 0
    assert pieces[-1].end == samples
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.last == b.first
        assert a.end == b.start
    for piece in pieces:
        assert piece.first < piece.last <= words
        assert piece.start < piece.end
        assert piece.end - piece.start <= longest * SAMPLE_RATE


def test_a_reading_is_cut_between_words_the_recogniser_heard_in_order() -> None:
    text = [f"w{i}" for i in range(100)]
    heard = _said(text)  # 0.7 s a word: 70 s
    samples = int(heard[-1].end * SAMPLE_RATE) + SAMPLE_RATE
    pieces = plan(text, heard, samples, piece_seconds=10, longest_seconds=20)
    assert pieces is not None
    assert len(pieces) >= 5
    _check_cover(pieces, 100, samples, 20)
    for piece in pieces[1:]:
        # At the middle of the pause before the piece's first word.
        first = heard[piece.first]
        assert first.start - 0.3 < piece.start / SAMPLE_RATE < first.start


def test_the_cut_prefers_the_longest_pause_near_the_end_of_a_piece() -> None:
    text = [f"w{i}" for i in range(40)]
    heard = _said(text)
    # A long pause before word 12 (about 8.9 s in): the cut lands there.
    heard = heard[:12] + [
        dataclasses.replace(w, start=w.start + 1, end=w.end + 1) for w in heard[12:]
    ]
    samples = int(heard[-1].end * SAMPLE_RATE)
    pieces = plan(text, heard, samples, piece_seconds=10, longest_seconds=20)
    assert pieces is not None
    assert pieces[1].first == 12


def test_a_stretch_with_nothing_recognised_is_not_cut_blindly() -> None:
    text = [f"w{i}" for i in range(100)]
    heard = _said(text[:10])  # the recogniser heard nothing of the other 60 s
    samples = 70 * SAMPLE_RATE
    assert plan(text, heard, samples, piece_seconds=10, longest_seconds=20) is None
    assert plan(text, [], samples, piece_seconds=10, longest_seconds=20) is None
    # Short enough to align at once: one piece, whatever was recognised.
    assert plan(text, [], 12 * SAMPLE_RATE, piece_seconds=10, longest_seconds=20) == [
        Piece(0, 100, 0, 12 * SAMPLE_RATE)
    ]


def test_the_text_after_the_last_word_heard_is_left_out_of_the_last_piece() -> None:
    text = [f"w{i}" for i in range(1000)]
    heard = _said(text[:50])
    samples = int(heard[-1].end * SAMPLE_RATE) + SAMPLE_RATE
    pieces = plan(text, heard, samples, piece_seconds=10, longest_seconds=20)
    assert pieces is not None
    assert 50 <= pieces[-1].last <= 60


@given(
    st.lists(st.booleans(), min_size=1, max_size=300),
    st.lists(st.floats(0.0, 1.5), min_size=300, max_size=300),
)
@settings(suppress_health_check=[HealthCheck.too_slow])  # 300 floats: slow on a busy machine
def test_pieces_cover_the_reading_in_order(heard_mask: list[bool], pauses: list[float]) -> None:
    text = [f"w{i % 7}" for i in range(len(heard_mask))]  # repeated words, like "the"
    heard, t = [], 0.2
    for i, (said, pause) in enumerate(zip(heard_mask, pauses, strict=False)):
        if said:
            heard.append(HeardWord(text[i], t, t + 0.3))
        t += 0.3 + pause
    samples = int((t + 0.5) * SAMPLE_RATE)
    pieces = plan(text, heard, samples, piece_seconds=8, longest_seconds=16)
    if pieces is not None:
        _check_cover(pieces, len(text), samples, 16)


@functools.cache
def _passage_words() -> tuple[Word, ...]:
    pcm = corpus.passage_pcm()
    bounds = [f * FRAME_SAMPLES for f in cuts(samples_of(pcm))]
    words: list[Word] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        words += recognise_segment(pcm[2 * a : 2 * b], a / SAMPLE_RATE)[0]
    return tuple(words)


@pytest.mark.timeout(600)  # the 44 s reading through Whisper and the phoneme model
def test_the_44_second_reading_aligned_in_pieces_scores_as_aligned_whole() -> None:
    pcm = corpus.passage_pcm()
    spoken = spoken_words(corpus.PASSAGE)
    heard = heard_words(_passage_words())
    pieces = plan([w.text for w in spoken], heard, len(pcm) // 2, piece_seconds=10)
    assert pieces is not None
    assert len(pieces) >= 3
    model = phone_model()
    log_probs = model.posteriors(samples_of(pcm))
    emissions = Emissions(log_probs, model.vocabulary)
    references = [ReferenceWord(w.text, w.written, entry(w.text)) for w in spoken]
    found = match([w.text for w in spoken], _passage_words())
    decoded = model.decode(log_probs)
    results = [
        judge(references, alignment, emissions, decoded, found, {}, True)
        for alignment in (
            align([r.entry for r in references], emissions),
            align_in_pieces([r.entry for r in references], emissions, pieces),
        )
    ]
    whole, cut = results
    correct = [w for w in cut.words if w["verdict"] == "correct"]
    assert len(correct) >= 0.9 * len(spoken)
    assert abs(cut.accuracy - whole.accuracy) <= 3
    starts = [w["start"] for w in cut.words]
    assert starts == sorted(starts)
    assert cut.words[-1]["end"] <= 44.4
    for piece in pieces:  # every word inside its piece's audio
        for w in cut.words[piece.first : piece.last]:
            assert piece.start / SAMPLE_RATE <= w["start"] <= w["end"] <= piece.end / SAMPLE_RATE


@pytest.mark.timeout(600)
def test_a_reading_longer_than_one_piece_may_be_is_scored_per_sound() -> None:
    pcm = corpus.passage_pcm()
    passage = [w.text for w in spoken_words(corpus.PASSAGE)]
    # Read twice (89 s), against the text three times: the third was not read.
    offset = len(pcm) / 2 / SAMPLE_RATE
    recognised = [*_passage_words()]
    recognised += [
        dataclasses.replace(w, start=w.start + offset, end=w.end + offset) for w in recognised
    ]
    result = evaluate_reading(pcm * 2, " ".join([corpus.PASSAGE] * 3), recognised, [])
    assert result is not None
    assert result.method == "ctc-gop"
    assert len(result.words) == 3 * len(passage)
    assert result.completeness is not None
    assert 60 <= result.completeness <= 70
    assert result.accuracy >= 85
    second = result.words[len(passage)]
    assert second["verdict"] == "correct"
    assert second["start"] > offset
