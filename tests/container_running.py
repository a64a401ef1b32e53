"""For the container tests: containers of the image, and ILPS's three stage services.

Containers share the host's network (the daemon here has no bridge), so a container
reaches the machine's PostgreSQL and the fakes on 127.0.0.1, and each one listens on
a port of the host: 8064 for the one run with ILPS's variables only, a free port for
the others (MANAGER_HTTP_PORT).
"""

from __future__ import annotations

import functools
import io
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.container_helpers import docker
from tests.ilps_helpers import serve

#: What ILPS's fake transcribing service hears, and its feedback service's verdict.
IPA = "ɪ t w ə z ð ə b ɛ s t ə v t aɪ m z"
ACCURACY = 87.5
MISTAKES: list[dict[str, Any]] = [
    {"reference": {"position": 3, "value": "ɒ"}, "actual": {"position": 3, "value": "ə"},
     "type": "Replacement"},
]  # fmt: skip
#: How long a container may take to start (migrations, models) before a test gives up.
START_SECONDS = 180


async def adocker(
    *args: str, check: bool = True, limit: float = 120
) -> subprocess.CompletedProcess[str]:
    """``docker`` off the event loop, so that the fakes keep answering meanwhile."""
    return await anyio.to_thread.run_sync(
        functools.partial(docker, *args, check=check, timeout=limit)
    )


@dataclass
class Container:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return await adocker("exec", self.name, *command, check=check)

    async def state(self) -> tuple[str, int]:
        """``running``/``exited``/... and the exit code."""
        out = await adocker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", self.name)
        status, code = out.stdout.split()
        return status, int(code)

    async def stop(self, grace: int) -> int:
        """SIGTERM, SIGKILL after ``grace`` seconds (as ``docker stop``); the exit code:
        137 means the grace ran out."""
        await adocker("stop", "--time", str(grace), self.name, limit=grace + 60)
        status, code = await self.state()
        assert status == "exited", status
        return code

    async def start(self) -> None:
        await adocker("start", self.name)

    async def logs(self) -> str:
        out = await adocker("logs", self.name, check=False)
        return out.stdout + out.stderr

    async def until(self, *probe: str) -> None:
        """Run ``probe`` in the container until it succeeds; fail at once if it exits."""
        with anyio.fail_after(START_SECONDS):
            while (await self.exec(*probe, check=False)).returncode != 0:
                status, code = await self.state()
                if status != "running":
                    raise AssertionError(f"{self.name} {status} ({code}):\n{await self.logs()}")
                await anyio.sleep(0.5)

    async def ilps_healthy(self) -> None:
        """ILPS's own health check, run inside the container as its compose file does."""
        await self.until("curl", "-f", f"http://localhost:{self.port}/health")

    async def ready(self) -> None:
        await self.until("curl", "-fsS", "-o", "/dev/null", f"http://localhost:{self.port}/readyz")


@asynccontextmanager
async def container(
    image: str,
    environment: Mapping[str, str],
    env_dir: Path,
    *,
    port: int,
    volume: str | None = None,
) -> AsyncIterator[Container]:
    """A detached container of ``image`` on the host's network with exactly
    ``environment`` (through an env file, as compose's ``env_file``); removed after,
    its log printed if the block failed."""
    name = f"stm-test-{uuid.uuid4().hex[:10]}"
    env_file = env_dir / f"{name}.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in environment.items()))
    args = ["run", "--detach", "--name", name, "--network=host", "--env-file", str(env_file)]
    if volume is not None:
        args += ["--volume", f"{volume}:/data"]
    await adocker(*args, image)
    running = Container(name, port)
    try:
        yield running
    except BaseException:
        with anyio.CancelScope(shield=True):
            print(f"--- log of {name}:\n{await running.logs()}")  # noqa: T201 - pytest shows it
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await adocker("rm", "--force", "--volumes", name, check=False)


class StageFakes:
    """ILPS's preprocessing, transcribing and feedback services, as real HTTP servers on
    loopback; feedback answers only once ``release`` is set."""

    def __init__(self, wav_16k: bytes) -> None:
        self.wav = wav_16k
        self.release = anyio.Event()
        #: Set at each feedback request (replace it to wait for the next one).
        self.scoring = anyio.Event()
        self.ports: dict[str, int] = {}

    async def _preprocessing(self, request: Request) -> Response:
        async with request.form() as form:
            assert isinstance(form["file"], UploadFile)
        return Response(self.wav, media_type="audio/wav")

    async def _transcribing(self, request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert isinstance(file, UploadFile)
            with wave.open(io.BytesIO(await file.read()), "rb") as audio:
                assert (audio.getframerate(), audio.getnchannels()) == (16_000, 1)
        return JSONResponse({"transcription": IPA})

    async def _feedback(self, request: Request) -> Response:
        await request.json()
        self.scoring.set()
        await self.release.wait()
        return JSONResponse({"accuracy": ACCURACY, "mistakes": MISTAKES})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[StageFakes]:
        async with AsyncExitStack() as stack:
            for name, endpoint in [
                ("PREPROCESSING", self._preprocessing),
                ("TRANSCRIBING", self._transcribing),
                ("FEEDBACK", self._feedback),
            ]:
                app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
                self.ports[name] = await stack.enter_async_context(serve(app))
            try:
                yield self
            finally:
                self.release.set()  # no request of a container left waiting on a fake

    def environment(self) -> dict[str, str]:
        """The ``MANAGER_SERVICE_*`` variables that name them, as ILPS's .env does."""
        variables: dict[str, str] = {}
        for name, port in self.ports.items():
            variables[f"MANAGER_SERVICE_{name}_HOST"] = "127.0.0.1"
            variables[f"MANAGER_SERVICE_{name}_PORT"] = str(port)
        return variables


async def owned_tasks(client: httpx.AsyncClient) -> int:
    """How many live tasks the instance ``client`` calls owns (its ``/readyz``)."""
    body = (await client.get("/readyz")).json()
    owned: int = body["cluster"]["tasks_owned"]
    return owned
