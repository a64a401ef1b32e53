"""Subtitle cues from segments and word times: readable, in order, the transcript whole."""

from __future__ import annotations

import io

import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from transcripts import render
from transcripts.cues import READABLE, Cue, cues, derived_segments
from transcripts.timing import Timed, joined, tokens_of

#: Rounding to milliseconds may stretch a cue by this much.
SLACK = 0.002

_letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyz,.?'", min_size=1, max_size=14)
_long = st.text(alphabet="abcdefghij", min_size=40, max_size=60)


@st.composite
def spoken(draw: st.DrawFn) -> list[Timed]:
    """Words in time order, with gaps and the odd word too long for a line."""
    texts = draw(st.lists(st.one_of(_letters, _letters, _letters, _long), min_size=1, max_size=80))
    words: list[Timed] = []
    at = draw(st.floats(0, 3))
    for text in texts:
        at += draw(st.floats(0, 2.0))
        length = draw(st.floats(0.0, 1.5))
        words.append(Timed(text, round(at, 3), round(at + length, 3)))
        at += length
    return words


@st.composite
def in_segments(draw: st.DrawFn) -> tuple[list[Timed], list[Timed]]:
    """Words and the segments they were cut into (each segment's text is its words')."""
    words = draw(spoken())
    cuts = sorted(draw(st.sets(st.integers(1, max(len(words) - 1, 1)), max_size=10)))
    bounds = [0, *[c for c in cuts if c < len(words)], len(words)]
    segments = [joined(words[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return words, segments


def _check_readable(found: list[Cue], transcript: str, duration: float) -> None:
    assert " ".join(c.text for c in found) == " ".join(transcript.split())
    previous_end = 0.0
    for cue in found:
        single_word = len(cue.text.split()) == 1
        assert 0.0 <= cue.start <= cue.end <= duration
        assert cue.start >= previous_end  # in order, never overlapping
        previous_end = cue.end
        if not single_word:
            assert len(cue.lines) <= READABLE.lines
            assert all(len(line) <= READABLE.line_characters for line in cue.lines)
            assert cue.end - cue.start <= READABLE.seconds + SLACK


@settings(max_examples=200, deadline=None)
@given(spoken())
def test_cues_from_words_alone_are_readable_and_hold_the_transcript(words: list[Timed]) -> None:
    transcript = " ".join(w.text for w in words)
    duration = words[-1].end + 0.5
    _check_readable(cues(transcript, words, (), duration), transcript, duration)


@settings(max_examples=200, deadline=None)
@given(in_segments())
def test_cues_from_segments_never_straddle_two(
    split: tuple[list[Timed], list[Timed]],
) -> None:
    words, segments = split
    transcript = " ".join(s.text for s in segments)
    duration = words[-1].end + 0.5
    found = cues(transcript, words, segments, duration)
    _check_readable(found, transcript, duration)
    for cue in found:  # each cue lies within one segment
        assert any(
            s.start - SLACK <= cue.start and cue.end <= s.end + SLACK
            for s in segments
            if cue.text in s.text
        ), cue


@settings(max_examples=100, deadline=None)
@given(in_segments())
def test_segments_without_word_times_are_cut_in_proportion(
    split: tuple[list[Timed], list[Timed]],
) -> None:
    """A remote engine may give segments and no words: their text is spread over them."""
    _, segments = split
    transcript = " ".join(s.text for s in segments)
    duration = segments[-1].end + 0.5
    _check_readable(cues(transcript, (), segments, duration), transcript, duration)


def test_a_short_sentence_is_one_cue_and_a_long_one_is_cut_after_a_comma() -> None:
    text = (
        "It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness"
    )
    words = [Timed(w, i * 0.4, i * 0.4 + 0.3) for i, w in enumerate(text.split())]
    found = cues(text, words, (), 12.0)
    assert [c.text for c in found] == [
        "It was the best of times, it was the worst of times,",
        "it was the age of wisdom, it was the age of foolishness",
    ]
    assert found[0].lines == ("It was the best of times,", "it was the worst of times,")
    assert cues("Hello there.", words[:2], (), 2.0)[0].lines == ("Hello there.",)


def test_without_segments_a_sentence_end_or_a_pause_ends_a_segment() -> None:
    words = [
        Timed("Hello", 0.0, 0.4),
        Timed("there.", 0.5, 0.9),
        Timed("How", 1.0, 1.2),
        Timed("are", 1.3, 1.5),
        Timed("you", 3.0, 3.3),  # after a pause of 1.5 s
    ]
    transcript = "Hello there. How are you"
    assert derived_segments(transcript, words, (), 4.0) == [
        Timed("Hello there.", 0.0, 0.9),
        Timed("How are", 1.0, 1.5),
        Timed("you", 3.0, 3.3),
    ]


def test_a_transcript_worded_otherwise_than_its_words_keeps_its_own_text() -> None:
    """Punctuation and casing from the transcript, times from the words it has."""
    words = [Timed("hello", 1.0, 1.5), Timed("world", 1.6, 2.0)]
    tokens = tokens_of("Hello, big world!", words, 0.0, 3.0)
    assert [t.text for t in tokens] == ["Hello,", "big", "world!"]
    assert tokens[0].start == 1.0
    assert tokens[-1].end == 2.0


def test_no_words_and_no_time_still_make_timed_cues() -> None:
    found = cues("one two three", (), (), None)
    assert [c.text for c in found] == ["one two three"]
    assert found[0].end > found[0].start


def test_nothing_said_makes_empty_files() -> None:
    assert cues("", (), (), 3.0) == []
    assert render.srt([]) == ""
    assert render.vtt([]) == "WEBVTT\n\n"
    assert render.text("") == "\n"


def test_subrip_and_webvtt_as_independent_readers_read_them() -> None:
    found = [
        Cue(0.0, 1.25, ("Fish & chips <b>",)),
        Cue(1.25, 3661.5, ("a --> b", "second line")),
    ]
    parsed = list(srt.parse(render.srt(found)))
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in parsed] == [
        (0.0, 1.25),
        (1.25, 3661.5),
    ]
    assert parsed[1].content == "a -> b\nsecond line"
    captions = webvtt.from_buffer(io.StringIO(render.vtt(found)))
    assert [(c.start, c.end) for c in captions.captions] == [
        ("00:00:00.000", "00:00:01.250"),
        ("00:00:01.250", "01:01:01.500"),
    ]
    assert captions.captions[0].text == "Fish &amp; chips &lt;b&gt;"
    assert render.clock(3661.5, ",") == "01:01:01,500"
