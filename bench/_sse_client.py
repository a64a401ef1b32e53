"""SSE load client (raw asyncio sockets, uvloop), driven by lines on stdin.

open <host> <port> <token> <count> <path> [<path>...]   open count streams per path
                                                         (round robin); prints "ready N"
wait <seconds>    wait until every stream has ended (or the time passes); prints one
                  JSON line: per-stream seqs check, live latencies (receipt minus the
                  event's created_at, only events persisted after the stream opened)
quit
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

TERMINAL = {"completed", "failed", "cancelled"}


class Stream:
    def __init__(self) -> None:
        self.opened = 0.0
        self.seqs: list[int] = []
        self.latencies: list[float] = []
        self.ended = asyncio.Event()
        self.status = 0
        self.terminal = False


async def run_stream(
    host: str,
    port: int,
    request: bytes,
    stream: Stream,
    ready: asyncio.Event,
    counter: list[int],
    total: int,
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stream.ended.set()
        counter[0] += 1
        if counter[0] == total:
            ready.set()
        return
    writer.write(request)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        stream.status = int(head.split(b" ", 2)[1])
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        stream.status = -1
    stream.opened = time.time()
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    buf = b""
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip(), 16)
            if size == 0:
                break
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            buf += chunk[:-2]
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        data = json.loads(line[6:])
                        seq = data.get("seq")
                        if seq is not None:
                            stream.seqs.append(seq)
                        created = datetime.fromisoformat(data["created_at"]).timestamp()
                        if created >= stream.opened:
                            stream.latencies.append((now - created) * 1000)
                        kind = data.get("type", "status")
                        if kind == "status" and data.get("status") in TERMINAL:
                            stream.terminal = True
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()
        stream.ended.set()


def check(stream: Stream) -> bool:
    """Every event once, in order, from seq 1 to a terminal one."""
    return stream.terminal and stream.seqs == list(range(1, len(stream.seqs) + 1))


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    streams: list[Stream] = []
    tasks: list[asyncio.Task[None]] = []
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        if line[0] == "open":
            host, port, token, count, paths = line[1], int(line[2]), line[3], int(line[4]), line[5:]
            streams, ready, counter = [], asyncio.Event(), [0]
            for i in range(count):
                path = paths[i % len(paths)]
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}"
                    "\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
                stream = Stream()
                streams.append(stream)
                tasks.append(
                    asyncio.create_task(
                        run_stream(host, port, request, stream, ready, counter, count)
                    )
                )
                if i % 100 == 99:
                    await asyncio.sleep(0.1)  # about 1,000 new streams a second per process
            try:
                await asyncio.wait_for(ready.wait(), 120)
            except TimeoutError:
                pass
            ok = sum(1 for s in streams if s.status == 200)
            print(f"ready {ok}", flush=True)
        elif line[0] == "wait":
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(s.ended.wait() for s in streams)), float(line[1])
                )
            except TimeoutError:
                pass
            report: dict[str, Any] = {
                "streams": len(streams),
                "ended": sum(1 for s in streams if s.ended.is_set()),
                "complete_in_order": sum(1 for s in streams if check(s)),
                # HTTP status of each open; 0: not connected, -1: no answer head.
                "open_statuses": dict(Counter(str(s.status) for s in streams)),
                "events": sum(len(s.seqs) for s in streams),
                "latencies_ms": [round(x, 3) for s in streams for x in s.latencies],
            }
            print(json.dumps(report), flush=True)
            tasks.clear()
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    import resource

    import uvloop

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(main())
