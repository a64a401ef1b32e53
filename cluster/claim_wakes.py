"""When this instance runs a claim round: rung by many, one round per burst.

Each ``stm_claimable`` notification (a task left unowned: admitted while its instance
was full, released, its instance gone) reaches every instance. Answering each with a
claim statement made a burst of admissions cost instances x notifications statements.
So: an instance with no room runs none (it claims when a task of its own ends); one
with room lets the burst come in for a moment (``settle``) and then runs one round,
which takes as many tasks as it has room for; the wakes that come during a round make
at most one more round, not one each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from supervisor.claims import Claims

Settle = Callable[[], Awaitable[None]]

#: How long a woken claimer lets the rest of a burst come in before its round: far
#: below what a task waits for anyway, long enough for a burst of admissions.
SETTLE_SECONDS = 0.05


async def _settle_a_moment() -> None:
    await anyio.sleep(SETTLE_SECONDS)


class ClaimWakes:
    """The wake-ups of one instance's claimer, coalesced."""

    def __init__(self, claims: Claims, *, settle: Settle = _settle_a_moment) -> None:
        self._claims = claims
        self._settle = settle
        self._rung = anyio.Event()
        #: Whether unowned tasks may be waiting: a round runs only then, so a task that
        #: ends here costs no claim statement while every task has an owner.
        self.maybe_unowned = True
        #: Rounds begun since the start (tests count them).
        self.rounds = 0

    @property
    def pending(self) -> bool:
        """Whether a round is due (rung, not yet begun)."""
        return self._rung.is_set()

    def wake(self, *, unowned: bool = False) -> None:
        """A round may be worth it (``unowned``: there are, or may be, unowned tasks);
        with no room nothing is rung: the end of a task here wakes it again."""
        self.maybe_unowned = self.maybe_unowned or unowned
        if self.maybe_unowned and self._claims.room:
            self._rung.set()

    async def next_round(self) -> None:
        """Wait until a round is due: rung, the burst settled, and room still there."""
        while True:
            await self._rung.wait()
            await self._settle()  # the rest of the burst rings the same bell meanwhile
            self._rung = anyio.Event()
            if self.maybe_unowned and self._claims.room:
                self.rounds += 1
                return
