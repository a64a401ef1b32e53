"""Running engine work in anyio's worker processes, where a crash cannot reach the server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar, TypeVarTuple, Unpack

import anyio.to_process
from anyio import BrokenWorkerProcess, CapacityLimiter

from .base import StageError, TransientStageError

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_in_worker(
    func: Callable[[Unpack[Ts]], T], *args: *Ts, limiter: CapacityLimiter, what: str
) -> T:
    """Call ``func(*args)`` in a worker process; a dead worker is a transient error.

    Any other exception the engine raises in the worker (its models missing, a library
    error on odd input) is transient too: the stage is retried with backoff, up to its
    attempts, and then fails with a short reason (the details go to the log). Left to
    crash the task's actor, it would be restarted without backoff, and forever when each
    attempt takes long enough to stay within the restart intensity.

    Cancellation (the actor's stage timeout) kills the worker instead of leaving it busy.
    """
    # Imported here, not at the top: the worker processes import this module too and
    # must not open metric files of their own (ops.multiprocess).
    from ops.metrics import ENGINE_BUSY

    try:
        async with limiter:
            ENGINE_BUSY.inc()
            try:
                # The slot is held here, so that the gauge counts only working processes.
                return await anyio.to_process.run_sync(
                    func, *args, cancellable=True, limiter=CapacityLimiter(1)
                )
            finally:
                ENGINE_BUSY.dec()
    except StageError:
        raise  # the engine's own verdict: permanent or transient
    except BrokenWorkerProcess as exc:
        raise TransientStageError(f"the {what} worker process died") from exc
    except Exception as exc:  # noqa: BLE001 - raised by the engine, inside its worker
        # The details are ours to read, not the user's: they go to the log.
        log.warning("the %s failed in its worker: %s: %s", what, type(exc).__name__, exc)
        raise TransientStageError(f"the {what} failed unexpectedly") from exc


class Runner(Protocol):
    """Where a stage runs its engine work: ``run_in_worker``, or ``run_here``."""

    async def __call__(
        self, func: Callable[[Unpack[Ts]], T], *args: *Ts, limiter: CapacityLimiter, what: str
    ) -> T: ...


async def run_here(
    func: Callable[[Unpack[Ts]], T], *args: *Ts, limiter: CapacityLimiter, what: str
) -> T:
    """Call ``func(*args)`` in this process, blocking it: for benches that count a
    stage's CPU with ``time.process_time`` and tests that count what it ran."""
    async with limiter:
        return func(*args)
