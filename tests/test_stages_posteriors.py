"""The phoneme model's posteriors shared between the transcribing and the evaluating stage:
the network runs once a task, and a score is the same whether the evaluator got them or
computed them (as it does for a resumed task, whose transcription comes from the store)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from uuid import UUID

import anyio
import numpy as np
import pytest
from sqlalchemy import URL

from speech.base import AudioInput, Evaluation, NormalisedAudio, Pipeline, Transcription
from speech.decode import EmbeddedPreprocessor, decode_audio
from speech.evaluate import EmbeddedEvaluator
from speech.phone_model import WINDOWING, frame_count, phone_model, samples_of
from speech.recognise import EmbeddedTranscriber
from speech.workers import run_here
from store.database import open_database
from store.journal import PgJournal
from store.records import NewTask, NewUpload
from store.tasks import TaskStore
from supervisor.config import SupervisorConfig
from supervisor.lifecycle import Stage, Status
from supervisor.messages import StageSucceeded
from supervisor.supervisor import Supervisor
from supervisor.transitions import change_for
from tests.fakes import drain, running
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
async def test_past_the_shared_length_each_stage_runs_the_network_itself(
    clip: NormalisedAudio,
) -> None:
    """A recording longer than ``shared_seconds``: no posteriors held between the stages,
    and (a 5 s clip is one window) the same transcription and scores."""
    limiter = anyio.CapacityLimiter(1)
    evaluator = EmbeddedEvaluator(limiter, run=run_here)
    shared = await EmbeddedTranscriber(limiter, run=run_here).transcribe(clip, "en", _ignore)
    model = phone_model()
    before = model.runs
    alone = EmbeddedTranscriber(limiter, run=run_here, shared_seconds=1.0)
    heard = await alone.transcribe(clip, "en", _ignore)
    assert heard.posteriors is None
    assert heard == shared
    scored = await _evaluate(evaluator, heard, HUMAN_TEXT, clip)
    assert model.runs - before == 2  # the window's run, then the evaluator's
    assert scored == await _evaluate(evaluator, shared, HUMAN_TEXT, clip)


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


def test_the_journal_gets_the_transcription_without_its_posteriors(clip: NormalisedAudio) -> None:
    """What the transcribing stage's success writes: the listed JSON fields, small."""
    transcriber = EmbeddedTranscriber(anyio.CapacityLimiter(1), run=run_here)
    heard = anyio.run(transcriber.transcribe, clip, "en", _ignore)
    assert heard.posteriors is not None
    done = StageSucceeded(Stage.TRANSCRIBING, heard)
    stored = json.dumps(change_for(done, Status.TRANSCRIBING, evaluates=True).fields)
    assert "posteriors" not in stored
    assert len(stored) < 20_000  # words, phonemes and segments of 5 s, not 251 x 191 floats
    assert "posteriors" not in repr(heard)


@pytest.mark.anyio
async def test_a_task_through_the_supervisor_runs_the_network_once(
    service_database_url: URL, user: UUID
) -> None:
    """A task with a text, through the supervisor and the PostgreSQL journal, the stages
    here (``run_here``); then the same task resumed in its evaluating stage from what the
    store holds (no posteriors): the network runs again and the evaluation is the same."""
    data = HUMAN_CLIP.read_bytes()
    limiter = anyio.CapacityLimiter(1)
    pipeline = Pipeline(
        EmbeddedPreprocessor(300, limiter),
        EmbeddedTranscriber(limiter, run=run_here),
        EmbeddedEvaluator(limiter, run=run_here),
    )
    model = phone_model()
    async with open_database(service_database_url, pool_size=2) as database:
        store, journal = TaskStore(database), PgJournal(database)
        upload = NewUpload(data, "a.wav", "audio/wav", hashlib.sha256(data).hexdigest())
        task, _ = await store.create(
            NewTask(user, "clip", "en-US", reference_text=HUMAN_TEXT), upload
        )
        before = model.runs
        with anyio.fail_after(120):
            async with running(Supervisor(journal, pipeline, SupervisorConfig(capacity=1))) as door:
                await door.start(task)
                await drain(await door.follow(task))
        assert model.runs - before == 1
        record = await store.get(user, task)
        assert record is not None
        assert record.status == "completed"
        assert record.evaluation is not None
        assert record.evaluation["method"] == "ctc-gop"

        snapshot = await journal.load(task)
        audio = await journal.load_normalised(task)
        assert snapshot is not None
        assert snapshot.transcription is not None
        assert snapshot.transcription.posteriors is None
        before = model.runs
        again = await pipeline.evaluator.evaluate(snapshot.transcription, HUMAN_TEXT, None, audio)
        assert model.runs - before == 1
        done = StageSucceeded(Stage.EVALUATING, again)
        fields = json.loads(json.dumps(change_for(done, Status.EVALUATING, evaluates=True).fields))
        assert fields == {
            "accuracy": record.accuracy,
            "mistakes": record.mistakes,
            "evaluation": record.evaluation,
        }
