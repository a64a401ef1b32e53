"""What the transcriber heard, set against the text: matched words, replaced words, extra
words, and whether the recording is a reading of this text at all (pure).

Whisper writes what was meant, so its words are the right evidence for *which* word was
said and the wrong one for *how*: a word it heard as another word is a replaced word
when the free phone decoding agrees (``verdicts.py``); a sound said wrongly inside the
right word is left to the goodness of pronunciation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from .base import Word
from .normalise import spoken_words

#: With at least this many words heard, a recording where under ``OTHER_TEXT_SHARE`` of
#: them are words of the text, in its order, is a reading of another text.
OTHER_TEXT_WORDS = 4
OTHER_TEXT_SHARE = 0.3


@dataclass(frozen=True)
class HeardWord:
    """One spoken word of the transcript (a written "1984" is four), with its times."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Match:
    heard: tuple[HeardWord, ...]
    #: Text word -> index in ``heard`` of the same word.
    same: dict[int, int] = field(default_factory=dict)
    #: Text word -> indices in ``heard`` of what was said in its place instead.
    replaced: dict[int, tuple[int, ...]] = field(default_factory=dict)
    #: Indices in ``heard`` that are no word of the text.
    extra: tuple[int, ...] = ()

    @property
    def read(self) -> int:
        """How many words of the text were surely read: up to the last of two consecutive
        text words heard as two consecutive words (one alone may be a chance "the")."""
        pairs = [i for i, j in self.same.items() if self.same.get(i - 1) == j - 1]
        return max(pairs) + 1 if pairs and not self.other_text else 0

    @property
    def other_text(self) -> bool:
        """Mostly words that are not the text's: a reading of another text."""
        if len(self.heard) < OTHER_TEXT_WORDS:
            return False
        return len(self.same) < OTHER_TEXT_SHARE * len(self.heard)


def heard_words(recognised: Sequence[Word]) -> tuple[HeardWord, ...]:
    """The transcript's words as spoken words (normalised as the text is)."""
    out: list[HeardWord] = []
    for word in recognised:
        for spoken in spoken_words(word.text):
            out.append(HeardWord(spoken.text, word.start, word.end))
    return tuple(out)


def match(text: Sequence[str], recognised: Sequence[Word]) -> Match:
    """The text's spoken words against the transcript's, in order."""
    heard = heard_words(recognised)
    matcher = SequenceMatcher(None, list(text), [h.text for h in heard], autojunk=False)
    same: dict[int, int] = {}
    replaced: dict[int, tuple[int, ...]] = {}
    extra: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            same.update({i1 + k: j1 + k for k in range(i2 - i1)})
        elif tag == "replace":
            # Spread the heard words over the text's words in order, each text word
            # getting at least one when there are enough.
            for k in range(i2 - i1):
                a = j1 + (j2 - j1) * k // (i2 - i1)
                b = max(j1 + (j2 - j1) * (k + 1) // (i2 - i1), a + 1)
                replaced[i1 + k] = tuple(range(a, min(b, j2)))
        elif tag == "insert":
            extra += range(j1, j2)
    return Match(heard, same, replaced, tuple(extra))
