"""Backoff delays with jitter, and the OTP-style restart intensity window."""

from __future__ import annotations

import random

import pytest

from supervisor.backoff import Backoff
from supervisor.intensity import RestartIntensity


@pytest.mark.parametrize("retry", range(1, 10))
def test_delay_is_between_half_and_all_of_the_capped_exponential(retry: int) -> None:
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(retry))
    ceiling = min(30.0, 2.0 ** (retry - 1))
    for _ in range(50):
        assert ceiling / 2 <= backoff.delay(retry) <= ceiling


def test_delay_grows_then_stays_at_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    backoff = Backoff(base=0.5, cap=5.0, rng=Top())
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    one = Backoff(rng=random.Random(7))
    two = Backoff(rng=random.Random(7))
    assert [one.delay(n) for n in range(1, 6)] == [two.delay(n) for n in range(1, 6)]


def test_zero_base_means_no_wait() -> None:
    assert Backoff(base=0.0).delay(5) == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_allows_max_restarts_within_the_period_then_refuses() -> None:
    clock = Clock()
    intensity = RestartIntensity(3, 60.0, clock)
    assert [intensity.allow() for _ in range(3)] == [True, True, True]
    clock.now = 59.0
    assert not intensity.allow()


def test_old_restarts_leave_the_window() -> None:
    clock = Clock()
    intensity = RestartIntensity(2, 10.0, clock)
    assert intensity.allow()
    clock.now = 5.0
    assert intensity.allow()
    assert not intensity.allow()
    clock.now = 10.5  # the restart at 0 is now more than 10 s old
    assert intensity.allow()
    assert not intensity.allow()
    clock.now = 100.0
    assert intensity.allow()
    assert intensity.allow()


def test_a_refused_restart_is_not_recorded() -> None:
    clock = Clock()
    intensity = RestartIntensity(1, 10.0, clock)
    assert intensity.allow()
    clock.now = 9.0
    assert not intensity.allow()
    clock.now = 10.5  # only the restart at 0 counted, and it has left the window
    assert intensity.allow()


def test_zero_restarts_allows_none() -> None:
    assert not RestartIntensity(0, 60.0, Clock()).allow()
