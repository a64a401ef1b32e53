"""What each worker report means for the journal: pure mapping to a ``Change``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from speech.base import Evaluation, NormalisedAudio, Transcription
from supervisor.events import Change, EventType
from supervisor.lifecycle import Stage, Status, after_stage
from supervisor.messages import (
    Queued,
    Report,
    RetryScheduled,
    SlotGranted,
    StageEntered,
    StageFailed,
    StageProgress,
    StageSucceeded,
)


def change_for(report: Report, status: Status, *, evaluates: bool) -> Change:
    """The transition a worker report causes for a task now in ``status``."""
    match report:
        case Queued(position=position):
            return Change(EventType.STATUS, Status.QUEUED, {"position": position})
        case SlotGranted():
            return Change(EventType.STATUS, Status.STARTED)
        case StageEntered(stage=stage):
            return Change(EventType.STATUS, Status(stage.value))
        case StageProgress(stage=stage, fraction=fraction):
            payload = {"stage": stage.value, "percent": round(fraction * 100, 1)}
            return Change(EventType.PROGRESS, status, payload)
        case RetryScheduled(stage=stage, attempt=attempt, error=error, delay=delay):
            error = storable(error)
            payload = {"stage": stage.value, "attempt": attempt, "error": error, "delay": delay}
            return Change(EventType.RETRY, status, payload)
        case StageSucceeded(stage=stage, output=output):
            target = after_stage(stage, evaluates=evaluates)
            return Change(EventType.STATUS, target, _payload(stage, output), _fields(output))
        case StageFailed(stage=stage, reason=reason):
            reason = storable(reason)
            payload = {"stage": stage.value, "reason": reason}
            return Change(EventType.STATUS, Status.FAILED, payload, {"failure_reason": reason})


def storable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL refuses in text and JSON alike.

    An engine's message is not ours: a NUL in it would make every write of the
    failure fail, and the task would crash instead of failing with a reason.
    """
    return text.replace("\x00", "")


def cancelled(reason: str) -> Change:
    reason = storable(reason)
    return Change(
        EventType.STATUS, Status.CANCELLED, {"reason": reason}, {"failure_reason": reason}
    )


def failed(reason: str) -> Change:
    reason = storable(reason)
    return Change(EventType.STATUS, Status.FAILED, {"reason": reason}, {"failure_reason": reason})


def requeued(attempt: int) -> Change:
    """A failed or cancelled task that the user runs again."""
    fields: dict[str, Any] = {"attempt": attempt, "failure_reason": None, **_CLEARED}
    return Change(EventType.STATUS, Status.CREATED, {"attempt": attempt}, fields)


_CLEARED: dict[str, Any] = {
    "transcript": None,
    "result": None,
    "words": None,
    "phonemes": None,
    "segments": None,
    "accuracy": None,
    "mistakes": None,
    "evaluation": None,
}


def _fields(output: NormalisedAudio | Transcription | Evaluation | None) -> dict[str, Any]:
    match output:
        case Transcription():
            return {
                "transcript": output.transcript,
                "result": output.ipa,
                "words": [asdict(w) for w in output.words],
                "phonemes": [asdict(p) for p in output.phonemes],
                "segments": [asdict(s) for s in output.segments],
                # A task that asked for detection (``auto``) shows what was found.
                **({"language": output.detected_language} if output.detected_language else {}),
            }
        case Evaluation():
            return {
                "accuracy": output.accuracy,
                "mistakes": output.mistakes,
                "evaluation": {
                    "words": output.words,
                    "unknown_words": output.unknown_words,
                    "reference_ipa": output.reference_ipa,
                    # Additive (forced alignment): absent for the older methods.
                    **(
                        {
                            "completeness": output.completeness,
                            "inserted": output.inserted,
                            "mistakes": output.word_mistakes,
                            "method": output.method,
                            "other_text": output.other_text,
                        }
                        # "gop": pocketsphinx's alignment; "ctc-gop": the phoneme model's.
                        if output.method in ("gop", "ctc-gop")
                        else {}
                    ),
                },
            }
        case _:
            return {}


def _payload(
    stage: Stage, output: NormalisedAudio | Transcription | Evaluation | None
) -> dict[str, Any]:
    match output:
        case NormalisedAudio(duration=duration):
            return {"stage": stage.value, "duration": round(duration, 3)}
        case Evaluation(accuracy=accuracy):
            return {"stage": stage.value, "accuracy": accuracy}
        case _:
            return {"stage": stage.value}
