"""A TCP proxy between the service and PostgreSQL that misbehaves on request.

It runs an asyncio loop in a thread of its own, so sync tests that drive real
processes can use it, and understands just enough of PostgreSQL's wire protocol
(plain TCP: the servers the tests use have SSL off) to:

* name each connection by the ``application_name`` of its startup message (the
  service names its dedicated connections: ``stm listener A``, ``stm watch A``...);
* lose a reply: when a request carrying some bytes (a status, as a bound parameter)
  goes by, forward it, let the server answer in full (its ``ReadyForQuery``: the
  statement has committed), then reset the client's connection without forwarding a
  byte of the answer. The client saw its write fail; the database has it;
* blackhole connections: stop forwarding either way and keep both sockets open, as a
  partition does (nothing is refused, nothing arrives, not even a peer's close: the
  server learns that a client gave up only once the partition heals);
* cut every connection (the server "restarted" as far as the clients know).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


@dataclass
class _LostReply:
    pattern: bytes
    times: int
    #: Which connections it applies to (a prefix of their application_name; "" for all).
    name: str = ""


@dataclass(eq=False)
class _Link:
    """One client connection and its server connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    name: str = ""
    #: Set while the link is blackholed: nothing is forwarded either way.
    held: bool = False
    #: A request carrying the pattern went by: its answer is dropped, the client reset.
    losing: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Stats:
    lost_replies: int = 0
    #: Each lost reply's trigger, as (application_name, pattern).
    lost: list[tuple[str, bytes]] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; see the module's docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._lost_replies: list[_LostReply] = []
        self._blackholed: list[str] = []
        self.stats = Stats()
        self.port = 0

    # -- control (from the test's thread) -------------------------------------

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def lose_reply(self, pattern: bytes, times: int = 1, name: str = "") -> None:
        """Lose the answers to the next ``times`` requests that carry ``pattern`` (on
        connections whose application_name starts with ``name``)."""
        self._call(lambda: self._lost_replies.append(_LostReply(pattern, times, name)))

    def blackhole(self, name: str) -> None:
        """Hold every connection whose application_name starts with ``name``, now and
        from now on: no byte passes either way; the sockets stay open."""

        def hold() -> None:
            self._blackholed.append(name)
            for link in self._links:
                if link.name.startswith(name):
                    link.held = True
                    link.released = asyncio.Event()

        self._call(hold)

    def heal(self) -> None:
        """End every blackhole: held connections forward again (what queued up)."""

        def release() -> None:
            self._blackholed.clear()
            for link in self._links:
                link.held = False
                link.released.set()

        self._call(release)

    def cut_all(self) -> None:
        """Reset every connection now (new ones are let through)."""

        def cut() -> None:
            for link in list(self._links):
                link.held = False
                link.released.set()
                _reset(link.client)
                link.server.close()

        self._call(cut)

    def names(self) -> list[str]:
        """The application_names of the connections open now."""
        future = asyncio.run_coroutine_threadsafe(self._names(), self._loop)
        return future.result(10)

    def _call(self, function: object) -> None:
        async def run() -> None:
            function()  # type: ignore[operator]

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- the loop's side ------------------------------------------------------

    async def _names(self) -> list[str]:
        return sorted(link.name for link in self._links)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.held = False
            link.released.set()
            _reset(link.client)
            link.server.close()
        for _ in range(50):  # the links' handlers end (their sockets closed)
            if not self._links:
                break
            await asyncio.sleep(0.01)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        link = _Link(writer, server_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._upstream(link, reader, server_writer),
                self._downstream(link, server_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._links.discard(link)
            _reset(writer) if link.losing else writer.close()
            server_writer.close()

    async def _upstream(
        self, link: _Link, reader: asyncio.StreamReader, server: asyncio.StreamWriter
    ) -> None:
        """Client to server: the startup message names the link; requests may trigger."""
        try:
            startup = await _startup(reader)
            if struct.unpack("!I", startup[4:8])[0] in (_SSL_REQUEST, _GSS_REQUEST):
                server.write(startup)  # the answer is one unframed byte: "N" here
                startup = await _startup(reader)
            link.name = _application_name(startup)
            if any(link.name.startswith(name) for name in self._blackholed):
                link.held = True
            await self._hold(link)
            server.write(startup)
            while True:
                try:
                    data = await reader.read(65536)
                except ConnectionError:  # the client gave up with a reset
                    data = b""
                await self._hold(link)  # a partition lets nothing through, an end neither
                if not data:
                    break
                if not link.losing:
                    link.losing = self._triggers(link, data)
                server.write(data)
                await server.drain()
        finally:
            with contextlib.suppress(Exception):
                server.write_eof()

    async def _downstream(
        self, link: _Link, reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        """Server to client, by messages: an answer being lost is read to its end
        (``ReadyForQuery``: committed) and then the client is reset."""
        first = await reader.read(1)
        if first in (b"N", b"S", b"G"):  # the answer to an SSL or GSS request
            client.write(first)
            prefix = b""
        else:
            prefix = first
        pending = prefix
        while True:
            while len(pending) < 5:
                more = await reader.read(65536)
                if not more:
                    await self._hold(link)
                    if pending:
                        client.write(pending)
                    client.close()
                    return
                pending += more
            length = struct.unpack("!I", pending[1:5])[0]
            while len(pending) < 1 + length:
                more = await reader.read(65536)
                if not more:
                    await self._hold(link)
                    client.close()
                    return
                pending += more
            message, pending = pending[: 1 + length], pending[1 + length :]
            await self._hold(link)
            if link.losing:
                if message[:1] == b"Z":  # committed (or rolled back): the answer is lost
                    _reset(client)
                    link.server.close()
                    return
                continue
            client.write(message)
            if not pending:
                await client.drain()

    async def _hold(self, link: _Link) -> None:
        while link.held:
            await link.released.wait()

    def _triggers(self, link: _Link, data: bytes) -> bool:
        for rule in self._lost_replies:
            if rule.times and link.name.startswith(rule.name) and rule.pattern in data:
                rule.times -= 1
                self.stats.lost_replies += 1
                self.stats.lost.append((link.name, rule.pattern))
                return True
        return False


async def _startup(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    length = struct.unpack("!I", head)[0]
    return head + await reader.readexactly(length - 4)


def _application_name(startup: bytes) -> str:
    fields = startup[8:].split(b"\0")
    for key, value in zip(fields[::2], fields[1::2], strict=False):
        if key == b"application_name":
            return value.decode(errors="replace")
    return ""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, not a FIN: the peer sees its connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextmanager
def fault_proxy(target_host: str, target_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
