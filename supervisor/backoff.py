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
