"""The phoneme model's posteriors shared between the transcribing and the evaluating stage:
the network runs once a task, and a score is the same whether the evaluator got them or
computed them (as it does for a resumed task, whose transcription comes from the store)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import anyio
import numpy as np
import pytest

from speech.base import AudioInput, Evaluation, NormalisedAudio, Transcription
from speech.decode import decode_audio
from speech.evaluate import EmbeddedEvaluator
from speech.phone_model import WINDOWING, frame_count, phone_model, samples_of
from speech.recognise import EmbeddedTranscriber
from speech.workers import run_here
from store.records import snapshot_of
from supervisor.lifecycle import Stage, Status
from supervisor.messages import StageSucceeded
from supervisor.transitions import change_for
from tests.pron_corpus import PASSAGE, passage_pcm
from tests.stages_helpers import HUMAN_CLIP, HUMAN_TEXT


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def clip() -> NormalisedAudio:
    return decode_audio(AudioInput(HUMAN_CLIP.read_bytes(), "audio/wav", HUMAN_CLIP.name), 300)


async def _ignore(fraction: float) -> None:
    """Progress reports, not looked at here."""


def _audio(pcm: bytes) -> NormalisedAudio:
    return NormalisedAudio(pcm, len(pcm) / 32_000)


async def _evaluate(
    evaluator: EmbeddedEvaluator, heard: Transcription, text: str, audio: NormalisedAudio
) -> Evaluation:
    result = await evaluator.evaluate(heard, text, None, audio)
    assert result is not None
    return result


@pytest.mark.anyio
async def test_the_evaluating_stage_does_not_run_the_network_when_the_posteriors_arrive(
    clip: NormalisedAudio,
) -> None:
    """Both stages run here (``run_here``), so the model's count of its runs is theirs."""
    limiter = anyio.CapacityLimiter(1)
    transcriber = EmbeddedTranscriber(limiter, run=run_here)
    evaluator = EmbeddedEvaluator(limiter, run=run_here)
    model = phone_model()

    before = model.runs
    heard = await transcriber.transcribe(clip, "en-US", _ignore)
    assert model.runs - before == 1  # the 5 s clip is one stretch: one run, one window

    before = model.runs
    shared = await _evaluate(evaluator, heard, HUMAN_TEXT, clip)
    assert model.runs == before

    # A resumed task: its transcription comes from the store, without the posteriors.
    before = model.runs
    computed = await _evaluate(evaluator, replace(heard, posteriors=None), HUMAN_TEXT, clip)
    assert model.runs - before == 1
    assert shared == computed
    assert shared.method == "ctc-gop"


@pytest.mark.anyio
async def test_the_44_s_reading_scores_the_same_with_the_posteriors_carried_or_computed() -> None:
    """Through real worker processes (the posteriors pickled out and in), on a reading
    long enough to be cut into stretches and transcribed in two windows."""
    audio = _audio(passage_pcm())
    limiter = anyio.CapacityLimiter(1)
    with anyio.fail_after(240):
        heard = await EmbeddedTranscriber(limiter).transcribe(audio, "en", _ignore)
        evaluator = EmbeddedEvaluator(limiter)
        shared = await _evaluate(evaluator, heard, PASSAGE, audio)
        computed = await _evaluate(evaluator, replace(heard, posteriors=None), PASSAGE, audio)

    posteriors = heard.posteriors
    assert posteriors is not None
    assert posteriors.windowing == WINDOWING
    assert posteriors.log_probs.dtype == np.float32
    samples = samples_of(audio.pcm)
    assert posteriors.log_probs.shape == (frame_count(len(samples)), len(phone_model().vocabulary))
    # What the evaluator computes without them, to the bit.
    assert np.array_equal(posteriors.log_probs, phone_model().posteriors(samples))

    assert shared == computed
    assert [w["verdict"] for w in shared.words] == [w["verdict"] for w in computed.words]
    assert shared.accuracy == computed.accuracy
    assert len(shared.words) > 100


@dataclass(frozen=True)
class _Row:
    """A task's stored columns, as ``snapshot_of`` reads them when a task resumes."""

    transcript: str
    words: list[dict[str, Any]]
    phonemes: list[dict[str, Any]]
    id: UUID = field(default_factory=uuid4)
    status: str = "evaluating"
    last_seq: int = 5
    attempt: int = 1
    language: str = "en"
    reference_text: str | None = HUMAN_TEXT
    text_id: UUID | None = None


def test_the_posteriors_are_never_stored(clip: NormalisedAudio) -> None:
    """The journal gets the transcription's JSON fields, not the frames; a transcription
    read back from the store has none, and equals the one that had them."""
    heard = anyio.run(
        EmbeddedTranscriber(anyio.CapacityLimiter(1), run=run_here).transcribe,
        clip,
        "en",
        _ignore,
    )
    assert heard.posteriors is not None
    fields = change_for(
        StageSucceeded(Stage.TRANSCRIBING, heard), Status.TRANSCRIBING, evaluates=True
    ).fields
    stored = json.dumps(fields)
    assert "posteriors" not in stored
    assert len(stored) < 20_000  # words, phonemes and segments of 5 s, not 250 x 191 floats
    assert "posteriors" not in repr(heard)

    row = _Row(fields["transcript"], fields["words"], fields["phonemes"])
    resumed = snapshot_of(row)
    assert resumed.transcription is not None
    assert resumed.transcription.posteriors is None
    assert resumed.transcription == replace(heard, segments=(), detected_language=None)
