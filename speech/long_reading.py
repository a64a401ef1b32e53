"""Long readings aligned in pieces: the frames and the text cut at the same places.

The Viterbi's memory is frames x states (a state per sound of the text): a 300 s reading
of a 10,000-character text would need gigabytes aligned whole. The transcriber's words
say where in the text each stretch of audio is: where two consecutive words of the text
were heard as two consecutive words, both the frames (at the middle of the pause between
them) and the text (between them) can be cut, and each piece aligned alone. Pieces are
about ``PIECE_SECONDS`` long, cut at the longest pause near their end, so the cost per
audio second and the memory stay a short recording's however long the reading is.

Words of the text after the last one heard, beyond what the rest of the audio could
hold, are left out of the last piece: they were not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from .base import SAMPLE_RATE
from .ctc_align import AlignedSlot, AlignedWord, CtcAlignment, Emissions, align
from .lexicon import Entry
from .phone_model import FRAME_SAMPLES
from .transcript_match import HeardWord

#: A piece's length aimed at, and the longest one accepted: a stretch with no usable cut
#: for this long (the recogniser heard little of the text) is not aligned in pieces.
PIECE_SECONDS = 20.0
LONGEST_PIECE_SECONDS = 45.0
#: Words of the text allowed to the last piece beyond those the recogniser heard there.
UNREAD_SLACK = 5


@dataclass(frozen=True)
class Piece:
    """Reference words ``[first, last)`` said in samples ``[start, end)``."""

    first: int
    last: int
    start: int
    end: int


@dataclass(frozen=True)
class _Cut:
    #: The first reference word after the cut, and the sample it is made at.
    word: int
    sample: int
    pause: float


def _matches(
    reference: Sequence[str], recognised: Sequence[HeardWord]
) -> list[tuple[int, int, int]]:
    """Runs of consecutive words the text and the recogniser share: (text index,
    recognised index, length), in order."""
    heard = [w.text for w in recognised]
    # Without the junk heuristic: a long text repeats "the" and "of" far more than 1 %,
    # and those are the very words that anchor short clauses.
    matcher = SequenceMatcher(None, list(reference), heard, autojunk=False)
    return [(i, j, size) for i, j, size in matcher.get_matching_blocks() if size]


def _cuts(matches: Sequence[tuple[int, int, int]], recognised: Sequence[HeardWord]) -> list[_Cut]:
    """Places where the text and the recording can be cut together, in order: between
    two words of a run, at the middle of the pause between them."""
    cuts: list[_Cut] = []
    for i, j, size in matches:
        for k in range(size - 1):
            before, after = recognised[j + k], recognised[j + k + 1]
            sample = int((before.end + after.start) / 2 * SAMPLE_RATE)
            sample -= sample % FRAME_SAMPLES
            cuts.append(_Cut(i + k + 1, sample, after.start - before.end))
    return cuts


def _last_read(
    matches: Sequence[tuple[int, int, int]], words: int, recognised: Sequence[HeardWord]
) -> int:
    """How many words of the text the recording may hold: up to the last one recognised,
    and a few more for the words recognised after it."""
    if not matches:
        return words
    i, j, size = matches[-1]
    after = len(recognised) - (j + size)
    return min(words, i + size + after + UNREAD_SLACK)


def plan(
    reference: Sequence[str],
    recognised: Sequence[HeardWord],
    samples: int,
    piece_seconds: float = PIECE_SECONDS,
    longest_seconds: float = LONGEST_PIECE_SECONDS,
) -> list[Piece] | None:
    """The pieces of a reading (the text's spoken words, what the recogniser heard, the
    recording's length in samples); None when some stretch has no cut for longer than
    ``longest_seconds``."""
    target = int(piece_seconds * SAMPLE_RATE)
    longest = int(longest_seconds * SAMPLE_RATE)
    matches = _matches(reference, recognised)
    read = _last_read(matches, len(reference), recognised)
    cuts = [c for c in _cuts(matches, recognised) if 0 < c.word < read and 0 < c.sample < samples]
    pieces: list[Piece] = []
    first, start = 0, 0
    while samples - start > target * 3 // 2:
        usable = [c for c in cuts if c.word > first and c.sample > start]
        near = [c for c in usable if c.sample - start <= target]
        near = [c for c in near if c.sample - start >= target // 2]
        if near:
            cut = max(near, key=lambda c: (c.pause, c.sample))
        elif usable and usable[0].sample - start <= longest:
            cut = usable[0]
        elif samples - start <= longest:
            break
        else:
            return None
        pieces.append(Piece(first, cut.word, start, cut.sample))
        first, start = cut.word, cut.sample
    if samples - start > longest:
        return None
    pieces.append(Piece(first, max(read, first + 1), start, samples))
    return pieces


def _shifted(part: CtcAlignment, piece: Piece) -> tuple[list[AlignedWord], list[tuple[int, int]]]:
    offset = piece.start // FRAME_SAMPLES
    words = [
        AlignedWord(
            w.index + piece.first,
            w.variant,
            tuple(AlignedSlot(s.slot, s.start + offset, s.end + offset) for s in w.slots),
        )
        for w in part.words
    ]
    return words, [(a + offset, b + offset) for a, b in part.garbage]


def align_in_pieces(
    words: Sequence[Entry], emissions: Emissions, pieces: Sequence[Piece], read: int = 0
) -> CtcAlignment:
    """Each piece aligned alone, as one alignment of the whole reading (frames and word
    indices absolute); the words after the last piece's are unread, the first ``read``
    are not (``ctc_align.align``)."""
    aligned: list[AlignedWord] = []
    garbage: list[tuple[int, int]] = []
    frames = len(emissions.blank)
    for piece in pieces:
        a, b = piece.start // FRAME_SAMPLES, min(-(-piece.end // FRAME_SAMPLES), frames)
        known = min(max(read - piece.first, 0), piece.last - piece.first)
        part = align(words[piece.first : piece.last], emissions.window(a, b), known)
        shifted, stretches = _shifted(part, piece)
        aligned += shifted
        garbage += stretches
    aligned += [AlignedWord(w, None, ()) for w in range(pieces[-1].last, len(words))]
    return CtcAlignment(tuple(aligned), tuple(garbage), frames)
