"""``MANAGER_PROCESSES=N``: N service processes on one listening socket, one cluster.

The launcher binds the port (checking it is free) and starts the database once, then
forks the service processes before any event loop exists; each listens on a socket of
its own in the port's ``SO_REUSEPORT`` group (the kernel spreads the connections over
them) and joins the cluster like any other instance. The
launcher only supervises: SIGTERM or SIGINT is passed on to every process, and one
that dies unasked (``kill -9``, a crash) is started again; its tasks meanwhile go to
the others.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

#: Restarts of one process closer together than this are spaced out by it.
RESTART_SPACING = 1.0


def serve_processes(
    count: int,
    serve_one: Callable[[int, bool], int],
    ended: Callable[[int], None],
    *,
    all_started: Callable[[], None] = lambda: None,
) -> int:
    """Run ``serve_one(index, restarted)`` in ``count`` forked processes until asked to stop.

    ``ended(pid)`` is called for each process that has exited; ``all_started()`` once all
    have been started. Returns 0 when every
    process stopped cleanly after SIGTERM/SIGINT, 1 otherwise.
    """
    stopping = False
    launcher = os.getpid()
    children: dict[int, int] = {}
    started: dict[int, float] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def spawn(index: int) -> None:
        last = started.get(index)
        if last is not None and time.monotonic() - last < RESTART_SPACING:
            time.sleep(RESTART_SPACING)
        pid = os.fork()
        if pid == 0:  # the service process: never returns into the launcher's code
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _stop_with(launcher)
            code = 1
            try:
                code = serve_one(index, index in started)
            except BaseException:  # noqa: BLE001 - report it, then leave without cleanup
                log.exception("service process %d failed", index)
            finally:
                # os._exit: the launcher's exit handlers (the embedded server's stop)
                # belong to the launcher, not to this process.
                os._exit(code)
        children[pid] = index
        started[index] = time.monotonic()

    previous = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    failed = False
    try:
        for index in range(count):
            spawn(index)
        all_started()  # each has a socket of its own now: the launcher lets go of its own
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = children.pop(pid)
            ended(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed = failed or code != 0
                continue
            log.error(
                "service process %d (pid %d) ended with %d; starting it again", index, pid, code
            )
            spawn(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 1 if failed else 0


#: prctl(PR_SET_PDEATHSIG): the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _stop_with(launcher: int) -> None:
    """Have the kernel send SIGTERM to this process when the launcher dies (a
    ``kill -9`` of it must not leave the service processes running, orphaned)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: nothing to ask the kernel for
        return
    if os.getppid() != launcher:  # it died before the request: too late to be told
        os.kill(os.getpid(), signal.SIGTERM)
