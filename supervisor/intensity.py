"""Restart intensity, OTP style: at most N restarts within T seconds."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class RestartIntensity:
    """Remembers recent restarts; refuses one that would exceed the limit."""

    def __init__(self, max_restarts: int, period: float, clock: Callable[[], float]) -> None:
        self._max = max_restarts
        self._period = period
        self._clock = clock
        #: Made at the first restart: most tasks never restart (a deque is ~0.6 KiB).
        self._restarts: deque[float] | None = None

    def allow(self) -> bool:
        """Record a restart now, if it stays within the limit."""
        now = self._clock()
        if self._restarts is None:
            self._restarts = deque()
        while self._restarts and now - self._restarts[0] > self._period:
            self._restarts.popleft()
        if len(self._restarts) >= self._max:
            return False
        self._restarts.append(now)
        return True
