"""Running engine work in anyio's worker processes, where a crash cannot reach the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio.to_process
from anyio import BrokenWorkerProcess, CapacityLimiter

from .base import TransientStageError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_in_worker(
    func: Callable[[Unpack[Ts]], T], *args: *Ts, limiter: CapacityLimiter, what: str
) -> T:
    """Call ``func(*args)`` in a worker process; a dead worker is a transient error.

    Cancellation (the actor's stage timeout) kills the worker instead of leaving it busy.
    """
    try:
        return await anyio.to_process.run_sync(func, *args, cancellable=True, limiter=limiter)
    except BrokenWorkerProcess as exc:
        raise TransientStageError(f"the {what} worker process died") from exc
