"""The engine work of one task: wait for a slot, run the stages, report each step.

The worker never writes to the journal: it posts reports to its actor's
mailbox, and the actor persists them in order. Retries of transient stage
errors happen here, with backoff; permanent errors end the work at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import anyio

from ops import metrics
from speech.base import (
    Evaluation,
    NormalisedAudio,
    PermanentStageError,
    Pipeline,
    Transcription,
    TransientStageError,
)
from supervisor import facts
from supervisor.backoff import Backoff
from supervisor.lifecycle import Stage, Status, stages_to_run
from supervisor.messages import (
    Journalled,
    Message,
    Queued,
    RetryScheduled,
    SlotGranted,
    StageEntered,
    StageFailed,
    StageProgress,
    StageSucceeded,
)
from supervisor.ports import Journal, TaskSnapshot
from supervisor.slots import EngineSlots, Moved, Ticket

Post = Callable[[Message], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
Output = NormalisedAudio | Transcription | Evaluation | None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff: Backoff
    timeout: float
    sleep: Sleep = anyio.sleep


class _GiveUp(Exception):
    def __init__(self, reason: str, failure: str) -> None:
        self.reason = reason
        self.failure = failure


class Worker:
    """Runs the stages a task still needs, posting one report per step."""

    def __init__(
        self,
        snapshot: TaskSnapshot,
        *,
        journal: Journal,
        pipeline: Pipeline,
        slots: EngineSlots,
        policy: RetryPolicy,
        evaluates: bool,
        post: Post,
        on_move: Moved | None = None,
    ) -> None:
        self._task = snapshot
        self._journal = journal
        self._pipeline = pipeline
        self._slots = slots
        self._policy = policy
        self._evaluates = evaluates
        self._post = post
        self._audio: NormalisedAudio | None = None
        self._audio_kept = False
        self._transcription = snapshot.transcription
        self._ticket: Ticket | None = None
        #: Told the task's new place while it waits in the queue for its first slot.
        self._on_move = on_move

    async def run(self) -> None:
        status = self._task.status
        self._ticket = ticket = self._slots.enqueue(self._task.id)
        ticket.on_move = self._on_move
        try:
            if status is Status.CREATED:
                await self._post(Queued(ticket.position))
            await _wait_for(ticket)
            if status in (Status.CREATED, Status.QUEUED):
                await self._post(SlotGranted())
            stages = stages_to_run(status, evaluates=self._evaluates)
            if not stages and status is Status.EVALUATING:
                # Stored while evaluating, but nothing to evaluate with now (the
                # configuration changed): it completes with what it has.
                await self._post(StageSucceeded(Stage.EVALUATING, None))
                return
            if stages and status.value != stages[0].value:
                await self._post(StageEntered(stages[0]))
            elif stages:
                # Resumed inside this stage (after a crash, or on another instance after
                # a failover): it starts over, and its streams hear so at once.
                await self._post(StageProgress(stages[0], 0.0))
            for stage in stages:
                # The step before (the slot, the stage entered, the last stage's output)
                # is journalled first: an instance that lost the task stops here.
                await self._until_journalled()
                try:
                    output = await self._attempt(stage)
                except _GiveUp as give_up:
                    await self._post(StageFailed(stage, give_up.reason, give_up.failure))
                    return
                fresh = not (stage is Stage.PREPROCESSING and self._audio_kept)
                await self._post(StageSucceeded(stage, output, fresh))
        finally:
            if self._ticket is not None:
                self._ticket.release()

    async def _until_journalled(self) -> None:
        """Wait until the actor has journalled every report posted so far (if a write is
        refused, the actor ends and this worker is cancelled while it waits)."""
        journalled = Journalled()
        await self._post(journalled)
        await journalled.reply.wait()

    async def _attempt(self, stage: Stage) -> Output:
        """Run ``stage`` until it succeeds, fails for good, or runs out of attempts."""
        policy = self._policy
        timing = metrics.STAGE_SECONDS.labels(stage.value, _engine(self._pipeline, stage))
        for attempt in range(1, policy.attempts + 1):
            failure = facts.RETRIES_EXHAUSTED
            try:
                started = anyio.current_time()
                with anyio.fail_after(policy.timeout):
                    output = await self._run(stage)
                timing.observe(anyio.current_time() - started)
                return output
            except PermanentStageError as error:
                raise _GiveUp(error.reason, facts.PERMANENT) from error
            except TransientStageError as error:
                reason = error.reason
            except TimeoutError:
                reason = f"{stage.value} took longer than {policy.timeout:g} s"
                failure = facts.TIMED_OUT
            if attempt == policy.attempts:
                raise _GiveUp(f"{reason} (gave up after {attempt} attempts)", failure)
            delay = policy.backoff.delay(attempt)
            await self._post(RetryScheduled(stage, attempt, reason, delay))
            await self._wait_without_slot(delay)
        raise AssertionError("unreachable")

    async def _wait_without_slot(self, delay: float) -> None:
        """Sleep out a backoff with the engine slot given back, then queue for one again:
        a task waiting to retry keeps no other task from working, nor the memory that
        goes with a slot (the transcriber's posteriors: the evaluator makes them again)."""
        if self._ticket is not None:
            self._ticket.release()
            self._ticket = None
        if self._transcription is not None and self._transcription.posteriors is not None:
            self._transcription = replace(self._transcription, posteriors=None)
        await self._policy.sleep(delay)
        self._ticket = self._slots.enqueue(self._task.id)
        await _wait_for(self._ticket)

    async def _run(self, stage: Stage) -> Output:
        match stage:
            case Stage.PREPROCESSING:
                self._audio = await self._preprocess()
                return self._audio
            case Stage.TRANSCRIBING:
                audio = self._audio or await self._journal.load_normalised(self._task.id)
                if audio is None:  # the decoded audio was lost: decode again
                    audio = self._audio = await self._preprocess()
                self._transcription = await self._pipeline.transcriber.transcribe(
                    audio, self._task.language, self._progress(stage)
                )
                return self._transcription
            case Stage.EVALUATING:
                if self._transcription is None:
                    raise PermanentStageError("no transcription to evaluate")
                # For an evaluator that aligns the text to the sound; None if it was lost.
                audio = self._audio or await self._journal.load_normalised(self._task.id)
                return await self._pipeline.evaluator.evaluate(
                    self._transcription, self._task.reference_text, self._task.text_id, audio
                )

    async def _preprocess(self) -> NormalisedAudio:
        kept = await self._journal.load_normalised(self._task.id)
        self._audio_kept = kept is not None
        if kept is not None:
            return kept
        upload = await self._journal.load_upload(self._task.id)
        return await self._pipeline.preprocessor.preprocess(upload)

    def _progress(self, stage: Stage) -> Callable[[float], Awaitable[None]]:
        async def report(fraction: float) -> None:
            await self._post(StageProgress(stage, min(max(fraction, 0.0), 1.0)))

        return report


async def _wait_for(ticket: Ticket) -> None:
    """Wait for an engine slot; the wait is measured (``stm_queue_wait_seconds``)."""
    joined = anyio.current_time()
    await ticket.wait()
    metrics.QUEUE_WAIT.observe(anyio.current_time() - joined)


def _engine(pipeline: Pipeline, stage: Stage) -> str:
    """The engine label of ``stage``: its ``engine`` name, else its class's."""
    match stage:
        case Stage.PREPROCESSING:
            impl: object = pipeline.preprocessor
        case Stage.TRANSCRIBING:
            impl = pipeline.transcriber
        case Stage.EVALUATING:
            impl = pipeline.evaluator
    name = getattr(impl, "engine", None)
    return name if isinstance(name, str) else type(impl).__name__.lower()
