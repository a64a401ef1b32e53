"""The CTC phoneme recogniser (speech/phone_model.py) on real audio."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from speech import phone_model as pm
from speech.alignment import align
from speech.base import SAMPLE_RATE, AudioInput
from speech.decode import decode_audio
from tests.stages_helpers import DATA, HUMAN_CLIP

#: "It was the best of times, it was the worst of times" as a General American speaker
#: says it, in the model's symbols (its "of" is /ɔf/).
EXPECTED = "ɪ t w ɑ z ð ə b ɛ s t ɔ f t aɪ m z ɪ t w ɑ z ð ə w ɝ s t ɔ f t aɪ m z".split()


def _samples(path: str, content_type: str) -> pm.Samples:
    data = (DATA / path).read_bytes()
    return pm.samples_of(decode_audio(AudioInput(data, content_type, path), 300).pcm)


@pytest.fixture(scope="module")
def model() -> pm.PhoneModel:
    return pm.phone_model()


@pytest.fixture(scope="module")
def clip() -> pm.Samples:
    return _samples(HUMAN_CLIP.name, "audio/wav")


def test_the_human_clip_is_heard_as_the_dictionary_says_it(
    model: pm.PhoneModel, clip: pm.Samples
) -> None:
    phones = model.phones(clip)
    heard = [p.ipa for p in phones]
    errors = sum(step.kind != "Match" for step in align(EXPECTED, heard))
    assert errors <= 3, " ".join(heard)
    # Times are in order, inside the clip, and the words are apart.
    assert all(a.end <= b.start for a, b in zip(phones, phones[1:], strict=False))
    assert phones[-1].end_seconds <= len(clip) / SAMPLE_RATE + pm.FRAME_SECONDS
    assert sum(p.word_start for p in phones) >= 8


def test_posteriors_are_normalised_log_probabilities(
    model: pm.PhoneModel, clip: pm.Samples
) -> None:
    log_probs = model.posteriors(clip)
    assert log_probs.shape == (pm.frame_count(len(clip)), len(model.vocabulary))
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-3)
    assert model.vocabulary[model.blank] == "<blank>"
    assert model.posteriors(clip[:0]).shape == (0, len(model.vocabulary))


def test_audio_cut_into_stretches_is_heard_as_when_whole(
    model: pm.PhoneModel, clip: pm.Samples, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = model.posteriors(clip)
    # A 5 s clip in stretches of at most 2 s, as a long reading is in 26 s ones.
    monkeypatch.setattr(pm, "MAX_FRAMES", 120)
    monkeypatch.setattr(pm, "CORE_FRAMES", 100)
    monkeypatch.setattr(pm, "MIN_CORE_FRAMES", 50)
    monkeypatch.setattr(pm, "MARGIN_FRAMES", 20)
    assert len(pm.cuts(clip)) > 3
    joined = model.posteriors(clip)
    assert joined.shape == whole.shape
    assert (joined.argmax(axis=1) == whole.argmax(axis=1)).mean() > 0.9


def test_a_44_second_reading_gets_frames_for_all_of_it(model: pm.PhoneModel) -> None:
    samples = _samples("two_cities_16k.flac", "audio/flac")
    assert len(samples) / SAMPLE_RATE > 44
    log_probs = model.posteriors(samples)
    assert log_probs.shape[0] == pm.frame_count(len(samples))  # the network alone stops at 30 s
    phones = model.decode(log_probs)
    # "... degree of comparison only": the last word, heard in the last seconds.
    assert [p.ipa for p in phones[-4:]] == ["ɑ", "n", "l", "i"]
    assert phones[-1].start_seconds > 41


def test_posteriors_made_otherwise_are_not_used(model: pm.PhoneModel, clip: pm.Samples) -> None:
    """The evaluator takes handed-on posteriors only when it would have computed the same."""
    heard = model.heard(clip)
    assert heard.windowing == pm.WINDOWING
    assert model.usable(heard, len(clip)) is heard.log_probs
    assert model.usable(None, len(clip)) is None
    # Another model or another cutting; other audio; a compacted copy.
    assert model.usable(replace(heard, windowing="another model"), len(clip)) is None
    assert model.usable(heard, len(clip) + 2 * pm.FRAME_SAMPLES) is None
    assert (
        model.usable(replace(heard, log_probs=heard.log_probs.astype(np.float16)), len(clip))
        is None
    )
    nothing = model.heard(clip[:0])
    assert model.usable(nothing, 0) is nothing.log_probs
