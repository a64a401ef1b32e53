"""A task through ILPS's own preprocessing, transcribing and feedback services (real HTTP fakes)."""

from __future__ import annotations

import io
import uuid
import wave
from contextlib import AsyncExitStack, aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import URL
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.ilps_helpers import (
    RawStream,
    android_pcm,
    legacy_stream,
    mono_16k_wav,
    raw_events,
    serve,
    transcribe,
)
from tests.service_helpers import running_service

pytestmark = pytest.mark.anyio

IPA = "ɪ t w ə z ð ə b ɛ s t ə v t aɪ m z"
MISTAKES: list[dict[str, Any]] = [
    {"reference": {"position": 3, "value": "ɒ"}, "actual": {"position": 3, "value": "ə"},
     "type": "Replacement"},
    {"reference": None, "actual": {"position": 9, "value": "t"}, "type": "Insertion"},
    {"reference": {"position": 12, "value": "s"}, "actual": None, "type": "Deletion"},
]  # fmt: skip


class IlpsServices:
    """The three stage services as the contract describes them; feedback waits for ``release``."""

    def __init__(self, wav: bytes) -> None:
        self.wav = wav
        self.uploads: list[tuple[str | None, str | None, int]] = []
        self.transcribed: list[tuple[Any, str | None, str | None]] = []
        self.feedback: list[Any] = []
        self.release = anyio.Event()

    async def preprocessing(self, request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert isinstance(file, UploadFile)
            self.uploads.append((file.filename, file.content_type, len(await file.read())))
        return Response(self.wav, media_type="audio/wav")

    async def transcribing(self, request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert isinstance(file, UploadFile)
            with wave.open(io.BytesIO(await file.read()), "rb") as audio:
                assert (audio.getframerate(), audio.getnchannels()) == (16_000, 1)
            self.transcribed.append((form["lang"], file.filename, file.content_type))
        return JSONResponse({"transcription": IPA})

    async def scoring(self, request: Request) -> Response:
        self.feedback.append(await request.json())
        await self.release.wait()
        return JSONResponse({"accuracy": 87.5, "mistakes": MISTAKES})


def _app(endpoint: Any) -> Starlette:
    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


async def test_a_task_goes_through_the_ilps_services(
    service_database_url: URL, tmp_path: Path, user: uuid.UUID, speech_clip: bytes
) -> None:
    fakes = IlpsServices(mono_16k_wav(speech_clip))
    text_id = uuid.uuid4()
    async with AsyncExitStack() as stack:
        speech: dict[str, Any] = {}
        for name, endpoint in [
            ("preprocessing", fakes.preprocessing),
            ("transcribing", fakes.transcribing),
            ("feedback", fakes.scoring),
        ]:
            port = await stack.enter_async_context(serve(_app(endpoint)))
            speech[f"service_{name}_host"] = "127.0.0.1"
            speech[f"service_{name}_port"] = port
            speech[f"service_{name}_protocol"] = "http"
        svc = await stack.enter_async_context(
            running_service(
                service_database_url, tmp_path, ilps_compat=True, speech_overrides=speech
            )
        )
        client = svc.client
        pcm = android_pcm(speech_clip)
        task_id = (await transcribe(client, user, pcm, text_id=text_id)).json()["id"]
        body = {"user_id": str(user)}

        stream = RawStream()
        with anyio.fail_after(30):
            async with (
                legacy_stream(client, user, task_id) as response,
                aclosing(raw_events(response, stream)) as events,
            ):
                async for _ in events:
                    if stream.statuses[-1] == "evaluating":
                        break
                # Evaluating: the stream says so, the gateway's schema reads transcribing.
                detail = (await client.post(f"/{task_id}", json=body)).json()
                assert detail["status"] == "transcribing"
                (item,) = (await client.post("/", json=body)).json()
                assert item["status"] == "transcribing"
                fakes.release.set()
                async for _ in events:
                    pass
        assert stream.statuses[-2:] == ["evaluating", "completed"]

        detail = (await client.post(f"/{task_id}", json=body)).json()
        assert detail["status"] == "completed"
        assert detail["result"] == IPA
        assert detail["accuracy"] == 87.5
        assert detail["mistakes"] == MISTAKES
        assert detail["text_id"] == str(text_id)
        (item,) = (await client.post("/", json=body)).json()
        assert item["accuracy"] == 87.5
        assert item["status"] == "completed"

    assert fakes.uploads == [("audio.pcm", "application/octet-stream", len(pcm))]
    assert fakes.transcribed == [("english", "audio.wav", "audio/wav")]
    assert fakes.feedback == [{"text_id": str(text_id), "actual_result": IPA}]
