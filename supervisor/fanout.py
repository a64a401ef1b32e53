"""Fan-out of an actor's events to its subscribers, one small stream each."""

from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream

from ops.metrics import SSE_DROPPED
from supervisor.events import Broadcast


class Fanout:
    """Delivers each event to every subscriber without ever waiting for one.

    A subscriber whose buffer is full is dropped: its stream ends and the
    client resumes from the journal with ``Last-Event-ID``. This keeps memory
    per connection bounded and the actor independent of slow readers.
    """

    def __init__(self, buffer: int) -> None:
        self._buffer = buffer
        self._subscribers: set[MemoryObjectSendStream[Broadcast]] = set()
        #: Set when the streams end because the task was deleted (they say so last).
        self.deleted = False

    def __len__(self) -> int:
        return len(self._subscribers)

    def add(self, first: Broadcast | None = None) -> ObjectReceiveStream[Broadcast]:
        """A new subscriber's stream; ``first`` is put on it alone, ahead of what follows."""
        send, receive = anyio.create_memory_object_stream[Broadcast](self._buffer)
        if first is not None:
            send.send_nowait(first)
        self._subscribers.add(send)
        return receive

    def publish(self, event: Broadcast) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:  # a slow reader: cut it loose, it can resume
                SSE_DROPPED.inc()
                self._drop(send)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):  # gone
                self._drop(send)

    def prune(self) -> int:
        """Forget the subscribers that stopped reading (closed their end); how many are left."""
        for send in list(self._subscribers):
            if send.statistics().open_receive_streams == 0:
                self._drop(send)
        return len(self._subscribers)

    def close(self, *, deleted: bool = False) -> None:
        """End every subscriber's stream (terminal state, shutdown, restart or deletion)."""
        self.deleted = self.deleted or deleted
        for send in list(self._subscribers):
            self._drop(send)

    def _drop(self, send: MemoryObjectSendStream[Broadcast]) -> None:
        self._subscribers.discard(send)
        send.close()
