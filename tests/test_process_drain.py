"""SIGTERM as a user sends it: a real ``run.py``, real connections, one upload in flight.

"Draining" here is the whole time from SIGTERM until the service logs ``DRAINED``: its
tasks handed over and every request it was answering answered. Throughout, a new
upload gets the documented 503 (JSON, ``Retry-After``), never a refused or reset
connection. The line is written before the listener closes, so a client that meets a
closed port finds it in the log already: no clock is compared.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA, free_port
from tests.process_helpers import ServiceProcess, clean_env, stop_leftovers

#: What the service logs once it has drained, just before it closes its listener.
DRAINED = "drained: closing the listener"
#: 503s answered while draining before the upload in flight may end: the drain must
#: outlast it, listening.
DRAINING_ANSWERS = 20
#: Bounds on the loops below (each turn is one request on a new connection).
MAX_TRIES = 5000
BOUNDARY = "drainboundary"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    # One upload at a time: the held upload's slot shows that it is in flight.
    process = ServiceProcess(tmp_path, free_port(), clean_env(MANAGER_MAX_CONCURRENT_UPLOADS="1"))
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait(10)
    stop_leftovers(tmp_path)


class HeldUpload:
    """A ``POST /tasks`` whose body stops half-way until ``release()``."""

    def __init__(self, url: str, token: str, clip: bytes) -> None:
        self._release = threading.Event()
        #: Set once its head is on the wire, before any part of its body.
        self.sent_head = threading.Event()
        self.answer: httpx.Response | Exception | None = None
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="held.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        half = len(clip) // 2
        self._parts = (head + clip[:half], clip[half:] + f"\r\n--{BOUNDARY}--\r\n".encode())
        self._thread = threading.Thread(target=self._post, args=(url, token))

    def _body(self) -> Iterator[bytes]:
        # httpx writes the request's head before it asks for the body's first part.
        self.sent_head.set()
        yield self._parts[0]
        self._release.wait(60)
        yield self._parts[1]

    def _post(self, url: str, token: str) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        try:
            self.answer = httpx.post(
                f"{url}/tasks", content=self._body(), headers=headers, timeout=60
            )
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.answer = error

    def start(self) -> None:
        self._thread.start()
        assert self.sent_head.wait(60)

    def release(self) -> None:
        self._release.set()

    def join(self) -> None:
        self.release()
        self._thread.join(60)


def post(service: ServiceProcess, token: str, clip: bytes) -> httpx.Response:
    """An upload on a connection of its own."""
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    files = {"file": ("a.wav", clip, "audio/wav")}
    return httpx.post(f"{service.url}/tasks", files=files, headers=headers, timeout=60)


def is_busy(response: httpx.Response) -> bool:
    return response.status_code == 503 and "uploads are in progress" in response.json()["detail"]


def test_uploads_during_a_sigterm_drain_get_503_until_the_listener_closes(
    service: ServiceProcess,
) -> None:
    service.start()
    token = service.token()
    clip = (DATA / "two_cities_5s.wav").read_bytes()
    held = HeldUpload(service.url, token, clip)
    held.start()
    try:
        # Its head reached the service before this upload's: it has the only upload slot,
        # and holds it while its body waits.
        assert is_busy(post(service, token, clip))
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        draining = 0
        refused: list[str] = []
        for _ in range(MAX_TRIES):
            if service.process.poll() is not None:
                break
            try:
                answer = post(service, token, clip)
            except httpx.TransportError as error:
                if DRAINED not in service.log.read_text():
                    state = "unanswered" if held.answer is None else "answered"
                    refused.append(f"{error!r} (the upload in flight: {state})")
                held.release()  # nothing more can reach it: let the service end
                continue
            assert answer.status_code in (201, 503), answer.text
            if answer.status_code == 503:
                assert answer.headers["Retry-After"]
                draining += "shutting down" in answer.json()["detail"]
                if draining >= DRAINING_ANSWERS:
                    held.release()
    finally:
        held.join()
    assert service.process.wait(60) == 0
    assert refused == [], "refused while draining"
    assert draining >= DRAINING_ANSWERS
    assert isinstance(held.answer, httpx.Response), held.answer
    assert held.answer.status_code == 503, held.answer.text
    lines = service.log.read_text().splitlines()
    signalled = next(i for i, line in enumerate(lines) if "received SIGTERM" in line)
    drained = next(i for i, line in enumerate(lines) if DRAINED in line)
    assert signalled < drained
