"""The pure lifecycle: statuses, allowed transitions, what comes next."""

from __future__ import annotations

import pytest

from supervisor.lifecycle import (
    RETRYABLE,
    TERMINAL,
    TRANSITIONS,
    Stage,
    Status,
    TransitionError,
    after_stage,
    check_transition,
    is_terminal,
    stages_to_run,
)

S = Status
HAPPY = [S.CREATED, S.QUEUED, S.STARTED, S.PREPROCESSING, S.TRANSCRIBING, S.EVALUATING]
LIVE = set(Status) - TERMINAL

ALLOWED = {
    (S.CREATED, S.QUEUED),
    (S.QUEUED, S.STARTED),
    (S.STARTED, S.PREPROCESSING),
    (S.PREPROCESSING, S.TRANSCRIBING),
    (S.TRANSCRIBING, S.EVALUATING),
    (S.TRANSCRIBING, S.COMPLETED),
    (S.EVALUATING, S.COMPLETED),
    (S.FAILED, S.CREATED),
    (S.CANCELLED, S.CREATED),
    *((live, end) for live in LIVE for end in (S.FAILED, S.CANCELLED)),
}


def test_every_status_has_its_transitions() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_transition_is_allowed_exactly_when_listed(current: Status, target: Status) -> None:
    if (current, target) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(TransitionError):
            check_transition(current, target)


def test_terminal_and_retryable() -> None:
    assert {s for s in Status if is_terminal(s)} == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert RETRYABLE == {S.FAILED, S.CANCELLED}
    assert TRANSITIONS[S.COMPLETED] == frozenset()


def test_statuses_serialise_as_their_names() -> None:
    assert [s.value for s in HAPPY] == [
        "created",
        "queued",
        "started",
        "preprocessing",
        "transcribing",
        "evaluating",
    ]
    assert Status("completed") is S.COMPLETED
    assert all(Status(stage.value).value == stage.value for stage in Stage)


P, T, E = Stage.PREPROCESSING, Stage.TRANSCRIBING, Stage.EVALUATING


@pytest.mark.parametrize(
    ("status", "without", "with_evaluation"),
    [
        (S.CREATED, (P, T), (P, T, E)),
        (S.QUEUED, (P, T), (P, T, E)),
        (S.STARTED, (P, T), (P, T, E)),
        (S.PREPROCESSING, (P, T), (P, T, E)),
        (S.TRANSCRIBING, (T,), (T, E)),
        (S.COMPLETED, (), ()),
        (S.FAILED, (), ()),
        (S.CANCELLED, (), ()),
    ],
)
def test_stages_to_run(
    status: Status, without: tuple[Stage, ...], with_evaluation: tuple[Stage, ...]
) -> None:
    assert stages_to_run(status, evaluates=False) == without
    assert stages_to_run(status, evaluates=True) == with_evaluation


def test_stages_to_run_while_evaluating() -> None:
    assert stages_to_run(S.EVALUATING, evaluates=True) == (E,)


@pytest.mark.parametrize(
    ("stage", "evaluates", "then"),
    [
        (P, False, S.TRANSCRIBING),
        (P, True, S.TRANSCRIBING),
        (T, False, S.COMPLETED),
        (T, True, S.EVALUATING),
        (E, True, S.COMPLETED),
    ],
)
def test_after_stage(stage: Stage, evaluates: bool, then: Status) -> None:
    assert after_stage(stage, evaluates=evaluates) is then
    # what comes after a stage is always an allowed move from that stage's status
    check_transition(Status(stage.value), then)


@pytest.mark.parametrize("evaluates", [False, True])
def test_walking_the_stages_reaches_completed(evaluates: bool) -> None:
    status = S.STARTED
    for stage in stages_to_run(status, evaluates=evaluates):
        check_transition(status, Status(stage.value)) if status is not Status(stage.value) else None
        status = after_stage(stage, evaluates=evaluates)
    assert status is S.COMPLETED
