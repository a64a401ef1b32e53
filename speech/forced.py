"""Forced alignment and goodness of pronunciation with the models the pocketsphinx wheel ships.

Passes over the same audio, with the same features:

* **alignment**: a finite-state grammar that is the reference text, each word
  any of its dictionary pronunciations, optional silence and noise between words,
  the end of the text allowed to stay unread. Its Viterbi path, searched without
  lattice rescoring and then scored again as the only path allowed, gives every
  expected phone its frames and its acoustic log-likelihood.
* **phone loop**: any phone after any other, over the same frames: the best
  competing explanation of every frame.

Every senone is scored in every frame (``compallsen``), so both passes share
the per-frame normaliser and their log-likelihoods can be subtracted. The
goodness of pronunciation (GOP) of an expected phone is its log-likelihood
minus the loop's over the same frames, per frame: about 0 when the expected
phone explains its frames as well as anything else, strongly negative when
another sound explains them better (Witt & Young, 2000).

Phones are dictionary words of one phone each (``p_AA``...), so the dictionary
stays at 39 extra words whatever the text; the word a phone belongs to, and which of
its variants the path took, are read back from the grammar's order (``_parse``).

**Error variants** (an extended recognition network): beside its dictionary
pronunciations, each word may be said as its canonical pronunciation with one common
learner substitution (``confusions.py``), at ``ERROR_PRIOR`` times a dictionary
variant's weight. The path takes one only where the substitute explains the frames
clearly better than the expected phone; ``Alignment.errors`` says which.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pocketsphinx import Decoder, get_model_path

from . import gop_calibration
from .base import SAMPLE_RATE
from .confusions import ErrorVariant, error_variants

#: The en-US model's phones (ARPAbet, no stress).
PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG "
    "OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
#: The rest of the text may be left unread from any word on, at this probability per
#: word left (at most three counted): a reading that stops early.
UNREAD_PROBABILITY = 1e-4
#: A silence between words costs this (each 10 ms frame of it costs nothing more).
SILENCE_PROBABILITY = 0.1
#: (beam, word beam) of each search. The alignment's are wide (a narrow one loses the
#: forced path on poor audio); the loop's are narrow: wider ones cost up to 40 times
#: the CPU and found no better path on the corpus (bench/pronunciation.py).
ALIGN_BEAMS = (1e-40, 1e-30)
LOOP_BEAMS = (1e-10, 1e-5)
#: A silence or noise stretch of the path is heard as speech when the loop puts phones
#: on at least this share of its frames.
GAP_SPEECH = 0.5
#: An error variant's weight relative to a dictionary variant's (0: none offered),
#: calibrated with the verdicts' thresholds (bench/pron_calibrate.py). The search weighs
#: grammar probabilities lightly against acoustic scores: on espeak-ng voices, 1e-10 and
#: 1e-15 took the same error variants, 1e-20 fewer, 1e-40 none.
ERROR_PRIOR = gop_calibration.ERROR_PRIOR
#: At most this many error variants per word: the grammar, and the search's cost, grow
#: with them.
MAX_ERROR_VARIANTS = 6
#: Per-frame log-likelihood given to a segment whose score underflowed to 0.
_FLOOR = -50.0

#: When no path reaches the end of the text within the alignment's beams (a text far
#: from what was said), it is tried once more with these.
WIDE_BEAMS = (1e-80, 1e-60)
#: The path is searched with these, without pocketsphinx's lattice rescoring
#: (``bestpath``): with it, a search that kept the text's path alive still returned a
#: partial one (the end of the text unread, silence to the end of the audio; even a
#: single word was lost at beams past 1e-50), which made the end of a clause `missed`
#: in half the false alarms on synthetic speech. Without it the search reports no
#: acoustic scores, so the path found is scored again as a grammar of its own tokens.
SEARCH_BEAMS = (1e-80, 1e-60)
_searcher: Any = None

#: Loaded once per worker process: the aligner and the phone loop (same features and
#: normaliser; two decoders because each search wants its own beam), and the wide one.
_decoders: tuple[Any, Any] | None = None
_wide: Any = None
_grammars: list[Any] = []


@dataclass(frozen=True)
class AlignedPhone:
    """One expected phone on the audio: frames, GOP (nats per frame), what the loop heard."""

    word: int
    phone: str
    start: int
    frames: int
    gop: float
    heard: str
    #: Share of its frames the loop took for silence or noise.
    silent: float


@dataclass(frozen=True)
class Gap:
    """Frames between words that the loop heard as speech (an inserted word, perhaps)."""

    start: int
    frames: int
    heard: tuple[str, ...]


@dataclass(frozen=True)
class Alignment:
    phones: tuple[AlignedPhone, ...]
    #: Reference words that the path skipped.
    skipped: frozenset[int]
    gaps: tuple[Gap, ...]
    frames: int
    #: Words whose path took an error variant (their phones are the variant's).
    errors: dict[int, ErrorVariant] = field(default_factory=dict, hash=False)


def _decoder(beams: tuple[float, float], bestpath: bool = True) -> Any:
    decoder = Decoder(
        samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", compallsen=True, dither=True,
        beam=beams[0], pbeam=beams[0], wbeam=beams[1], fsgusefiller=False, bestpath=bestpath,
    )  # fmt: skip
    for phone in PHONES:
        decoder.add_word(f"p_{phone}", phone, False)
    decoder.add_word("p_", "AH", True)  # the last add updates the recogniser
    return decoder


def _load() -> tuple[Any, Any]:
    global _decoders
    if _decoders is None:
        aligner, looper = _decoder(ALIGN_BEAMS), _decoder(LOOP_BEAMS)
        loop: list[Any] = [(0, 0, 1.0 / len(PHONES), f"p_{p}") for p in PHONES]
        loop.append((0, 0, 1.0 / len(PHONES), "<sil>"))
        loop.append((0, 1, 1.0))  # epsilon: the loop may end after silence too
        _grammars.append(looper.create_fsg("loop", 0, 1, loop))  # kept alive, as above
        looper.add_fsg("loop", _grammars[-1])
        looper.activate_search("loop")
        _decoders = (aligner, looper)
    return _decoders


def _usable(choices: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """A word's non-empty variants (a word spelled to nothing is said as a schwa)."""
    return [c for c in choices if c] or [("AH",)]


def _grammar(
    variants: Sequence[Sequence[tuple[str, ...]]],
    unread: bool = True,
    weights: Sequence[Sequence[float]] | None = None,
) -> tuple[list[Any], int]:
    """Transitions of the reference's grammar: word after word, each a choice of variants
    (each at its ``weights`` entry, else all alike); with ``unread``, the rest of the text
    may be left unread from any word on."""
    transitions: list[Any] = [(0, 0, SILENCE_PROBABILITY, "<sil>")]
    state, fresh = 0, 1
    ends: list[int] = []
    for w, choices in enumerate(variants):
        end = fresh
        fresh += 1
        usable = _usable(choices)
        for v, phones in enumerate(usable):
            here = state
            for k, phone in enumerate(phones):
                to = end if k == len(phones) - 1 else fresh
                if to != end:
                    fresh += 1
                prior = weights[w][v] if weights is not None else 1 / len(usable)
                weight = prior if k == 0 else 1.0
                transitions.append((here, to, weight, f"p_{phone}"))
                here = to
        # Silence or noise between words, never inside one (fillers are off).
        transitions.append((end, end, SILENCE_PROBABILITY, "<sil>"))
        ends.append(end)
        state = end
    # No word is skipped inside the text: pocketsphinx's search takes such an epsilon far
    # below its price (a skip at 1e-30 beat a well-said "spring" by 3.6 nats of acoustic
    # score), so short words and whole words vanished from native readings. A word not
    # said gets its few frames and a low GOP, or silence there: mispronounced or missed.
    # The rest of the text unread, in one hop (a reading that stops early).
    for k, here in enumerate(ends[:-1] if unread else []):
        transitions.append((here, state, UNREAD_PROBABILITY ** min(len(ends) - 1 - k, 3)))
    return transitions, state


def _parse(
    variants: Sequence[Sequence[tuple[str, ...]]], path: Sequence[str]
) -> list[int | None] | None:
    """The word each phone of ``path`` belongs to, consistent with the grammar (None
    when no parse exists; it always does for the decoder's own path)."""
    parsed = _parse_taken(variants, path)
    return None if parsed is None else parsed[0]


#: (words skipped, error variants taken, previous position, variant or None).
_Step = tuple[int, int, int, int | None]


def _offer(here: dict[int, _Step], end: int, step: _Step) -> None:
    if end not in here or step[:2] < here[end][:2]:
        here[end] = step


def _parse_taken(
    variants: Sequence[Sequence[tuple[str, ...]]],
    path: Sequence[str],
    plain: Sequence[int] | None = None,
) -> tuple[list[int | None], list[int | None]] | None:
    """The word each phone of ``path`` belongs to, and the variant each word took (None:
    skipped, or cut short).

    A dynamic programme over (word, position): each word takes one of its variants or
    nothing. Variants from ``plain[w]`` on are error variants: where the path parses
    more than one way, the parse with the fewest skips, then fewest errors, is kept.
    """
    n = len(path)
    reach: list[dict[int, _Step]] = [{0: (0, 0, 0, None)}]
    for w, choices in enumerate(variants):
        usable = _usable(choices)
        first_error = plain[w] if plain is not None else len(usable)
        here: dict[int, _Step] = {}
        for position, (skips, errors, _, _) in reach[-1].items():
            _offer(here, position, (skips + 1, errors, position, None))
            for v, phones in enumerate(usable):
                end = position + len(phones)
                if end <= n and tuple(path[position:end]) == phones:
                    _offer(here, end, (skips, errors + (v >= first_error), position, v))
        reach.append(here)
    last, position = len(variants), n
    owner: list[int | None] = [None] * n
    taken: list[int | None] = [None] * len(variants)
    if n not in reach[-1]:
        # The search ran out of audio inside a word (a recording cut short): the path
        # is a parse of the words before it and a beginning of that word.
        partial = _partial(variants, path, reach)
        if partial is None:
            return None
        last, position = partial
        for k in range(position, n):
            owner[k] = last
    for w in reversed(range(last)):
        _, _, previous, variant = reach[w + 1][position]
        taken[w] = variant
        for k in range(previous, position):
            owner[k] = w if variant is not None else None
        position = previous
    return owner, taken


def _partial(
    variants: Sequence[Sequence[tuple[str, ...]]],
    path: Sequence[str],
    reach: Sequence[dict[int, Any]],
) -> tuple[int, int] | None:
    """(word, position): the last word whose variant ``path[position:]`` begins."""
    tail_of = {position: tuple(path[position:]) for r in reach for position in r}
    for w in reversed(range(len(variants))):
        usable = _usable(variants[w])
        for position in reach[w]:
            tail = tail_of[position]
            if any(len(tail) < len(v) and v[: len(tail)] == tail for v in usable):
                return w, position
    return None


def _decode(decoder: Any, pcm: bytes) -> list[tuple[str, int, int, float]]:
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    segments = []
    for seg in decoder.seg() or ():
        frames = seg.end_frame - seg.start_frame + 1
        score = math.log(seg.ascore) if seg.ascore > 0 else _FLOOR * frames
        segments.append((seg.word, seg.start_frame, frames, score))
    return segments


def _force(
    decoder: Any, pcm: bytes, transitions: list[Any], final: int
) -> list[tuple[str, int, int, float]] | None:
    # Held until the search is removed: the decoder does not keep the grammar alive.
    grammar = decoder.create_fsg("align", 0, final, transitions)
    decoder.add_fsg("align", grammar)
    decoder.activate_search("align")
    try:
        segments = _decode(decoder, pcm)
    except RuntimeError:  # no path reached the end of the text
        return None
    finally:
        decoder.remove_search("align")  # the next task's grammar takes its name
        del grammar
    return segments or None


def _is_phone(word: str) -> bool:
    return word.startswith("p_")


def _path_scored(
    aligner: Any, pcm: bytes, path: Sequence[tuple[str, int, int, float]]
) -> list[tuple[str, int, int, float]] | None:
    """The tokens of a path found without scores, aligned again as the only path allowed:
    the same path (give or take a boundary), with each token's acoustic score."""
    tokens = [w for w, *_ in path if not w.startswith(("<s>", "</s>", "("))]
    linear = [(k, k + 1, 1.0, token) for k, token in enumerate(tokens)]
    return _force(aligner, pcm, linear, len(tokens)) if tokens else None


def _aligned(
    pcm: bytes, network: _Network, unread: bool
) -> list[tuple[str, int, int, float]] | None:
    global _wide, _searcher
    aligner, _ = _load()
    transitions, final = _grammar(network.variants, unread, network.weights)
    if _searcher is None:
        _searcher = _decoder(SEARCH_BEAMS, bestpath=False)
    path = _force(_searcher, pcm, transitions, final)
    scored = None if path is None else _path_scored(aligner, pcm, path)
    if scored is not None:
        return scored
    aligned: list[tuple[str, int, int, float]] | None = _force(aligner, pcm, transitions, final)
    if aligned is None:
        # A fresh decoder with wider beams: a used one has been seen to fail where a
        # fresh one aligns the same audio.
        _wide = _decoder(WIDE_BEAMS)
        aligned = _force(_wide, pcm, transitions, final)
    return aligned


def _loop_frames(pcm: bytes) -> tuple[list[float], list[str]]:
    """Per frame: the phone loop's log-likelihood and its phone ("" for silence or noise)."""
    _, looper = _load()
    loop = _decode(looper, pcm)
    frames = max((s + f for _, s, f, _ in loop), default=0)
    frame_score = [0.0] * (frames + 1)
    frame_label = [""] * (frames + 1)
    for word, start, length, score in loop:
        for k in range(start, min(start + length, frames + 1)):
            frame_score[k] = score / length
            frame_label[k] = word[2:] if _is_phone(word) else ""
    return frame_score, frame_label


def _spoken_tail(alignment: Alignment) -> bool:
    """The path left the end of the text unread where the loop heard speech."""
    if not alignment.skipped or not alignment.phones:
        return bool(alignment.skipped) and bool(alignment.gaps)
    last = alignment.phones[-1]
    after = last.start + last.frames
    return any(g.start >= after for g in alignment.gaps)


@dataclass(frozen=True)
class _Network:
    """Each word's variants (its dictionary ones, then its error variants) and weights."""

    variants: list[list[tuple[str, ...]]]
    weights: list[list[float]]
    #: How many of each word's variants are the dictionary's.
    plain: list[int]
    errors: list[list[ErrorVariant]]


def _network(variants: Sequence[Sequence[tuple[str, ...]]], error_prior: float) -> _Network:
    words = [_usable(choices) for choices in variants]
    errors = [error_variants(w, MAX_ERROR_VARIANTS) if error_prior > 0 else [] for w in words]
    return _Network(
        variants=[[*w, *(e.phones for e in errs)] for w, errs in zip(words, errors, strict=True)],
        weights=[
            [1 / len(w)] * len(w) + [error_prior / len(w)] * len(errs)
            for w, errs in zip(words, errors, strict=True)
        ],
        plain=[len(w) for w in words],
        errors=errors,
    )


def align(
    pcm: bytes,
    variants: Sequence[Sequence[tuple[str, ...]]],
    error_prior: float | None = None,
) -> Alignment | None:
    """Align the words (each a list of ARPAbet variants) to 16 kHz mono audio and score it;
    each word may also take an error variant at ``error_prior`` (default ``ERROR_PRIOR``).

    None when the audio cannot be aligned to the text at all.
    """
    network = _network(variants, ERROR_PRIOR if error_prior is None else error_prior)
    loop = _loop_frames(pcm)
    aligned = _aligned(pcm, network, unread=True)
    alignment = None if aligned is None else _score(network, aligned, *loop)
    if alignment is not None and _spoken_tail(alignment):
        # Speech the model explains poorly (a strong accent, synthetic speech) can cost
        # more than leaving the rest unread; where the loop heard speech there, the whole
        # text is aligned instead.
        # The search can still stop short (it then returns its best partial path): the
        # second path is kept only when it reads more of the text.
        aligned = _aligned(pcm, network, unread=False)
        whole = None if aligned is None else _score(network, aligned, *loop)
        if whole is not None and len(whole.skipped) < len(alignment.skipped):
            alignment = whole
    return alignment


def _score(
    network: _Network,
    aligned: Sequence[tuple[str, int, int, float]],
    frame_score: Sequence[float],
    frame_label: Sequence[str],
) -> Alignment | None:
    """Each aligned phone's GOP against the loop's frames; the gaps heard as speech."""
    frames = len(frame_score) - 1
    path = [w[2:] for w, *_ in aligned if _is_phone(w)]
    parsed = _parse_taken(network.variants, path, network.plain)
    if parsed is None:
        return None
    owner, taken = parsed
    phones: list[AlignedPhone] = []
    gaps: list[Gap] = []
    said: set[int] = set()
    k = 0
    for word, start, length, score in aligned:
        end = min(start + length, frames + 1)
        labels = frame_label[start:end]
        if not _is_phone(word):
            if sum(bool(label) for label in labels) >= GAP_SPEECH * max(length, 1):
                run = [b for a, b in zip(["", *labels], labels, strict=False) if b and b != a]
                gaps.append(Gap(start, length, tuple(run)))
            continue
        w = owner[k]
        k += 1
        if w is None:  # unreachable for the decoder's own path
            continue
        said.add(w)
        loop_score = sum(frame_score[start:end])
        voiced = Counter(label for label in labels if label)
        heard_phone = voiced.most_common(1)[0][0] if voiced else ""
        silent = 1 - sum(voiced.values()) / max(len(labels), 1)
        gop = (score - loop_score) / max(length, 1)
        phones.append(AlignedPhone(w, word[2:], start, length, gop, heard_phone, silent))
    skipped = frozenset(range(len(network.variants))) - said
    errors = {
        w: network.errors[w][v - network.plain[w]]
        for w, v in enumerate(taken)
        if v is not None and v >= network.plain[w] and w in said
    }
    return Alignment(tuple(phones), skipped, tuple(gaps), frames, errors)


def model_dictionary_path() -> str:
    """The CMU dictionary inside the wheel (with every pronunciation variant)."""
    return os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
