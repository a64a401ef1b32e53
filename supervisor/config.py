"""Tunables of the supervisor and its actors (plain data; web/settings.py fills it).

The defaults here are the service's: web/settings.py takes its own from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speech.cpus import cpu_count


@dataclass(frozen=True)
class SupervisorConfig:
    #: Tasks doing engine work at once; the rest are ``queued``.
    capacity: int = field(default_factory=cpu_count)
    #: Attempts per stage for transient errors (the first try included).
    stage_attempts: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    #: Seconds a stage may run before it counts as a transient failure.
    stage_timeout: float = 600.0
    #: Restart intensity: at most ``max_restarts`` crashes of one actor in ``restart_period`` s.
    max_restarts: int = 3
    restart_period: float = 60.0
    #: Messages an actor's mailbox holds before senders wait.
    mailbox_size: int = 64
    #: Events buffered per subscriber before a slow one is dropped (it resumes by seq).
    subscriber_buffer: int = 256
    #: Seconds actors get to reach a safe point on shutdown.
    shutdown_grace: float = 10.0
    #: Longest wait between attempts to reach an unavailable journal.
    journal_retry_cap: float = 5.0
