"""Subtitle cues: a segment per cue while it reads comfortably, else cut at word times.

Readable means (the usual subtitling guidance, e.g. the BBC's and Netflix's): at
most two lines of at most 42 characters, on screen for at most 7 seconds. A cue is
cut only between words, preferably after a clause's punctuation; a word too long
for a line gets a cue of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transcripts.timing import Timed, joined, sentences, timed, tokens_of, words_within

#: What ends a clause: a good place to cut a cue that has grown too long.
_CLAUSE_ENDS = (",", ";", ":", ".", "?", "!", "…")


@dataclass(frozen=True)
class Limits:
    line_characters: int = 42
    lines: int = 2
    seconds: float = 7.0


#: The defaults: two lines of 42 characters, 7 seconds.
READABLE = Limits()


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    #: The text as it is shown: one or two lines.
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def wrap(words: Sequence[str], width: int) -> list[str]:
    """Lines of at most ``width`` characters, filled greedily (a longer word alone)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def balanced(words: Sequence[str], limits: Limits) -> tuple[str, ...]:
    """The cue's lines: one if it fits, else the two most even lines that fit."""
    text = " ".join(words)
    if len(text) <= limits.line_characters or len(words) < 2:
        return (text,)
    greedy = wrap(words, limits.line_characters)
    if len(greedy) != 2:
        return tuple(greedy)
    best = (greedy[0], greedy[1])
    for cut in range(1, len(words)):
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
        if max(len(first), len(second)) < max(len(best[0]), len(best[1])):
            best = (first, second)
    return best


def fits(tokens: Sequence[Timed], limits: Limits) -> bool:
    """Whether the tokens make one readable cue."""
    if tokens[-1].end - tokens[0].start > limits.seconds:
        return False
    texts = [t.text for t in tokens]
    width = limits.line_characters
    length = sum(len(text) for text in texts) + len(texts) - 1
    if length <= width:  # one line: no need to wrap
        return True
    if length > limits.lines * (width + 1) - 1:  # more than the lines can hold, however cut
        return False
    lines = wrap(texts, width)
    return len(lines) <= limits.lines and all(len(line) <= width for line in lines)


def pack(tokens: Sequence[Timed], limits: Limits) -> list[list[Timed]]:
    """The tokens of one segment cut into readable runs, in order, none empty."""
    runs: list[list[Timed]] = []
    current: list[Timed] = []
    for token in tokens:
        while current and not fits([*current, token], limits):
            cut = _clause_cut(current)
            runs.append(current[:cut])
            current = current[cut:]
        current.append(token)
    if current:
        runs.append(current)
    return runs


def _clause_cut(tokens: Sequence[Timed]) -> int:
    """Where to end a full run: after its last clause end in its second half, else all."""
    for index in range(len(tokens) - 1, len(tokens) // 2 - 1, -1):
        if index < len(tokens) - 1 and tokens[index].text.endswith(_CLAUSE_ENDS):
            return index + 1
    return len(tokens)


def token_groups(
    transcript: str, words: Sequence[Timed], segments: Sequence[Timed], duration: float | None
) -> list[list[Timed]]:
    """The timed tokens of each segment; without segments, of each sentence of the words."""
    if segments:
        spans = zip(segments, words_within(words, segments), strict=True)
        groups = [tokens_of(s.text, w, s.start, s.end) for s, w in spans]
        return [g for g in groups if g]
    tokens = tokens_of(transcript, words, 0.0, duration or 0.0)
    return sentences(tokens)


def derived_segments(
    transcript: str, words: Sequence[Timed], segments: Sequence[Timed], duration: float | None
) -> list[Timed]:
    """The segments as given, else made from the words (sentences and pauses)."""
    if segments:
        return list(segments)
    return [joined(group) for group in token_groups(transcript, words, (), duration)]


def cues(
    transcript: str,
    words: Sequence[Timed],
    segments: Sequence[Timed],
    duration: float | None,
    limits: Limits = READABLE,
) -> list[Cue]:
    """Readable cues in time order, none overlapping the next, inside ``0..duration``."""
    out: list[Cue] = []
    for group in token_groups(transcript, words, segments, duration):
        for run in pack(group, limits):
            span = joined(run)
            out.append(Cue(span.start, span.end, balanced([t.text for t in run], limits)))
    return _in_order(out, duration)


def _in_order(found: list[Cue], duration: float | None) -> list[Cue]:
    """Times rounded to milliseconds, each cue starting no earlier than the last ended,
    all inside the audio."""
    out: list[Cue] = []
    floor = 0.0
    for cue in found:
        start = max(_ms(cue.start), floor)
        end = max(_ms(cue.end), start)
        if duration is not None:
            limit = _ms(max(duration, 0.0))
            start, end = min(start, limit), min(end, limit)
        out.append(Cue(start, end, cue.lines))
        floor = end
    return out


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0), 3)


__all__ = ["Cue", "Limits", "Timed", "cues", "derived_segments", "timed"]
