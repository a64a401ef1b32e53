"""Exponential backoff with jitter for transient stage errors."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """``delay(n)`` for the n-th retry: base * 2**(n-1), capped, with "equal jitter".

    Half the delay is fixed and half random, so retries of many tasks spread
    out but none comes back immediately.
    """

    base: float = 1.0
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, retry: int) -> float:
        ceiling: float = min(self.cap, self.base * 2.0 ** (retry - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def outage_delay(outages: int, cap: float) -> float:
    """The wait before trying an unavailable journal again after ``outages`` failures
    in a row: 0.1 s, doubling, at most ``cap`` (no jitter: nothing is gained by
    spreading out waits for a database that is not there)."""
    return min(cap, 0.05 * 2.0**outages)
