"""Times for every token of a text: from the recogniser's words, else spread over a span.

Segments give sentences (or Whisper's windows) with a start and an end; words give
each word's time. A cue must start and end on word times, so each segment's text is
cut into whitespace tokens and each token gets the time of its word.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Characters a second when there is no time at all to go by (a comfortable reading pace).
READING_PACE = 15.0
#: A silence at least this long between two words ends a derived segment.
PAUSE_SECONDS = 0.6
#: What a word ends with when it ends a sentence.
SENTENCE_ENDS = (".", "?", "!", "…", "。", "？", "！")


@dataclass(frozen=True)
class Timed:
    """A piece of text said between two instants (seconds from the start of the audio)."""

    text: str
    start: float
    end: float
    #: How sure the recogniser was, 0..1 (1.0 where it does not say, as for segments).
    confidence: float = 1.0


def timed(items: Iterable[dict[str, Any]] | None) -> list[Timed]:
    """Stored words or segments (``{"text", "start", "end", ...}``) as ``Timed``, in time order;
    entries without text are left out."""
    found = [
        Timed(
            str(item["text"]).strip(),
            float(item["start"]),
            float(item["end"]),
            float(item.get("confidence", 1.0)),
        )
        for item in items or ()
        if str(item.get("text", "")).strip()
    ]
    return sorted(found, key=lambda t: (t.start, t.end))


def tokens_of(text: str, words: Sequence[Timed], start: float, end: float) -> list[Timed]:
    """``text`` cut at whitespace, each token with a time.

    When the tokens are as many as ``words`` (the recogniser's words of this text, as a
    Whisper segment's are), each takes its word's time; otherwise the times are spread
    over the words' span (else ``start``..``end``) in proportion to the characters.
    """
    tokens = text.split()
    if not tokens:
        return []
    if len(tokens) == len(words):
        return [
            Timed(token, w.start, max(w.end, w.start), w.confidence)
            for token, w in zip(tokens, words, strict=True)
        ]
    if words:
        start, end = words[0].start, max(w.end for w in words)
    if end <= start:
        end = start + len(text) / READING_PACE
    return _spread(tokens, start, end)


def _spread(tokens: list[str], start: float, end: float) -> list[Timed]:
    total = sum(len(t) for t in tokens) + len(tokens) - 1
    per_char = (end - start) / total
    out: list[Timed] = []
    at = 0
    for token in tokens:
        out.append(Timed(token, start + at * per_char, start + (at + len(token)) * per_char))
        at += len(token) + 1
    return out


def words_within(words: Sequence[Timed], segments: Sequence[Timed]) -> list[list[Timed]]:
    """Each segment's words (both in time order).

    When the words are as many as the segments' tokens (a Whisper transcription's words
    are its segments' words), they are dealt out in order; otherwise each word goes to
    the first segment that holds its middle.
    """
    counts = [len(s.text.split()) for s in segments]
    if sum(counts) == len(words):
        dealt: list[list[Timed]] = []
        at = 0
        for count in counts:
            dealt.append(list(words[at : at + count]))
            at += count
        return dealt
    out: list[list[Timed]] = [[] for _ in segments]
    index = 0
    for word in words:
        middle = (word.start + word.end) / 2
        while index < len(segments) and segments[index].end < middle:
            index += 1
        if index == len(segments):
            break
        if segments[index].start <= middle:
            out[index].append(word)
    return out


def sentences(tokens: Sequence[Timed], pause: float = PAUSE_SECONDS) -> list[list[Timed]]:
    """Tokens grouped as segments are when a recogniser gives none: a group ends after a
    sentence's last word, or where the speaker pauses."""
    groups: list[list[Timed]] = []
    current: list[Timed] = []
    for index, token in enumerate(tokens):
        current.append(token)
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (
            following is None
            or token.text.endswith(SENTENCE_ENDS)
            or following.start - token.end >= pause
        ):
            groups.append(current)
            current = []
    return groups


def joined(tokens: Sequence[Timed]) -> Timed:
    """The tokens as one piece: their text with single spaces, first start to last end."""
    return Timed(" ".join(t.text for t in tokens), tokens[0].start, max(t.end for t in tokens))
