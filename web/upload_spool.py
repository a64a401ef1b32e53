"""Where an upload waits while it streams in: a temporary file, hashed as it is written,
read back in chunks when it is stored; and the cap on uploads in flight.

Past its first 64 KiB an upload is on disk, and every write (with its share of the
SHA-256) runs in a worker thread, as Starlette's writes to a rolled-over spool do: an
upload costs the process a chunk or two of memory, whatever its size, and the event
loop never hashes more than those first 64 KiB.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from tempfile import SpooledTemporaryFile
from typing import Any

import anyio

from web.errors import ApiError

#: Kept in memory below this; the sniffed head of a file fits.
SPOOL_MEMORY = 64 * 1024
#: What is read back, and sent to the database, at a time to store an upload. asyncpg
#: copies each chunk into its buffers on the event loop, and one loop turn can send
#: several uploads' chunks: with 16 uploads' ``lo_put`` 1 MiB chunks held the loop up
#: to 6-14 ms, 256 KiB ones under 3 ms, for the same CPU in all (bench/README.md).
CHUNK = 256 * 1024


class HashingSpool(SpooledTemporaryFile[bytes]):
    """A spooled temporary file that keeps the SHA-256 and the size of what was written."""

    def __init__(self) -> None:
        super().__init__(max_size=SPOOL_MEMORY)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return super().write(data)


class SpooledBody:
    """An upload's bytes, read back from its spool in chunks (``store.records.UploadBody``)."""

    def __init__(self, spool: HashingSpool) -> None:
        self._spool = spool
        self.size = spool.size

    async def chunks(self) -> AsyncIterator[bytes]:
        await anyio.to_thread.run_sync(self._spool.seek, 0)
        while chunk := await anyio.to_thread.run_sync(self._spool.read, CHUNK):
            yield chunk


class UploadSlots:
    """At most ``limit`` uploads in flight; the next one is a 503 with ``Retry-After``.

    Refused rather than queued: a queued upload would hold its connection and its
    client's bytes in the kernel's buffers, and a client can try again in a second.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._changed = anyio.Event()

    def _count(self, change: int) -> None:
        self.in_flight += change
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, in_flight: int) -> None:
        """Until exactly ``in_flight`` uploads are in flight (tests synchronise on it)."""
        while self.in_flight != in_flight:
            await self._changed.wait()

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_flight >= self.limit:
            raise ApiError(
                503,
                f"{self.limit} uploads are in progress, the most this service takes at once; "
                "try again shortly",
                headers={"Retry-After": "1"},
            )
        self._count(1)
        try:
            yield
        finally:
            self._count(-1)
