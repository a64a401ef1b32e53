"""A real webhook receiver on 127.0.0.1 (a threaded HTTP server) that answers as scripted."""

from __future__ import annotations

import io
import queue
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio.to_thread

#: An answer that never comes: the request hangs until the receiver closes.
HANG = 0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers the n-th request with ``answers[n]`` (then ``then``), and queues what came."""

    answers: list[int] = field(default_factory=list)
    then: int = 200
    port: int = 0
    arrived: queue.Queue[Received] = field(default_factory=queue.Queue)
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self) -> int:
        with self._lock:
            n, self._count = self._count, self._count + 1
        return self.answers[n] if n < len(self.answers) else self.then

    def next(self, timeout: float = 60.0) -> Received:
        """The next request that arrived (blocking); queue.Empty after ``timeout``."""
        return self.arrived.get(timeout=timeout)

    async def anext(self, within: float = 60.0) -> Received:
        """The next request, waited for in a thread so the event loop runs on."""
        return await anyio.to_thread.run_sync(self.next, within)

    def nothing_more(self) -> bool:
        return self.arrived.empty()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  # the name http.server calls
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            receiver.arrived.put(Received(self.path, dict(self.headers.items()), body))
            status = receiver.answer()
            if status == HANG:
                receiver.released.wait(120)
                return
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@contextmanager
def receiver_running(answers: list[int] | None = None, then: int = 200) -> Iterator[Receiver]:
    receiver = Receiver(list(answers or []), then)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def silent_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A recording of silence: the task fails at once (a terminal transition, fast)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()
