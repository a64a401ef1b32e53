"""``POST /v1/audio/transcriptions``: the OpenAI audio API over ordinary tasks.

The upload becomes a task through the same door and admission as ``POST /tasks``
(same capacity, queue, list and console); the request then waits for the task's end
and answers in the format asked for. A caller who hangs up cancels the task; a wait
past ``MANAGER_TRANSCRIPTION_WAIT_SECONDS`` answers 202 with the task's URL.
"""

from __future__ import annotations

import logging
from uuid import UUID

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from speech.settings import SpeechSettings
from store.records import NewTask, NewUpload, TaskRecord
from store.tasks import KeyContended, KeyReused
from supervisor.lifecycle import Status
from supervisor.ports import JournalUnavailable
from web.admission import admit_upload, refuse_when_draining
from web.context import Services, services
from web.errors import ApiError
from web.openai_shapes import (
    GRANULARITIES,
    Refused,
    TranscriptionForm,
    error_response,
    parse_form,
    refused_of,
    verbose,
)
from web.task_end import Outcome, wait_for_end
from web.transcript_view import Finished
from web.uploads import ParsedUpload

log = logging.getLogger(__name__)

PATH = "/v1/audio/transcriptions"
#: The longest a hung-up caller's task takes to be cancelled before the handler gives up
#: (the cancel is recorded by then, or the database is away and the task runs on).
CANCEL_SECONDS = 10.0
#: The status logged and counted for a request whose caller left (nginx's convention).
CLIENT_CLOSED = 499

_MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def transcriber_label(speech: SpeechSettings) -> str:
    """Which transcriber answers, as the ``X-Transcriber`` header and ``verbose_json`` say."""
    if speech.transcriber == "openai":
        return f"openai:{speech.openai_model}"
    return speech.transcriber or "embedded"  # chosen by the settings' validator: never None


class Transcriptions:
    """The route's ASGI app: every answer, 405 included, in OpenAI's error shape."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if request.method != "POST":
                raise Refused(405, "use POST", headers={"Allow": "POST"})
            response = await _transcribe(request, receive)
        except Refused as refused:
            response = error_response(refused)
        except ApiError as error:
            response = error_response(refused_of(error))
        except KeyReused:
            message = "this Idempotency-Key was used before with a different request"
            response = error_response(Refused(400, message, code="idempotency_key_reused"))
        except KeyContended:
            message = "the task of this Idempotency-Key was being deleted meanwhile; try again"
            response = error_response(Refused(409, message))
        except JournalUnavailable:
            message = "the database is unavailable; try again shortly"
            response = error_response(Refused(503, message, headers={"Retry-After": "2"}))
        except ClientDisconnect:
            response = Response(status_code=CLIENT_CLOSED)  # left while uploading
        await response(scope, receive, send)


async def _transcribe(request: Request, receive: Receive) -> Response:
    app = services(request)
    user_id = app.auth.user_id(request)
    refuse_when_draining(app)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Refused(400, "Idempotency-Key must be 1 to 200 characters")
    forms: list[TranscriptionForm] = []  # the form, read with the upload, shapes the answer

    def task_of(parsed: ParsedUpload) -> tuple[NewTask, NewUpload]:
        granularities = [v for name, v in parsed.repeated if name in GRANULARITIES]
        form = parse_form(parsed.fields, granularities, {"languages": app.languages})
        forms.append(form)
        task = NewTask(
            user_id=user_id,
            title=parsed.upload.filename[:50],
            language=form.language,
            reference_text=(form.reference_text or "").strip() or None,
            idempotency_key=key,
        )
        return task, parsed.upload

    record, _ = await admit_upload(request, app, task_of)
    (form,) = forms
    patience = app.settings.transcription_wait_seconds
    waited = await wait_for_end(app, user_id, record.id, record.last_seq, receive, patience)
    match waited.outcome:
        case Outcome.HUNG_UP:
            await _cancel(app, record.id)
            return Response(status_code=CLIENT_CLOSED)
        case Outcome.WAITED_ENOUGH | Outcome.STOPPING:
            return await _pointer(app, user_id, record, waited.outcome)
    return await _answer(app, user_id, record.id, waited.status, form)


async def _cancel(app: Services, task_id: UUID) -> None:
    with anyio.move_on_after(CANCEL_SECONDS, shield=True):
        outcome = await app.door.cancel(task_id, "the caller of the transcription hung up")
        log.info("task %s: its caller hung up (cancel: %s)", task_id, outcome.value)


async def _pointer(app: Services, user_id: UUID, record: TaskRecord, outcome: Outcome) -> Response:
    """202: the task goes on; its URL is where the result will be."""
    now = await app.store.owned(user_id, record.id)
    why = (
        "the service is restarting"
        if outcome is Outcome.STOPPING
        else f"it was not done within {app.settings.transcription_wait_seconds:g} s"
    )
    url = f"/tasks/{record.id}"
    body = {
        "task_id": str(record.id),
        "status": now or "deleted",
        "url": url,
        "message": f"the transcription goes on ({why}): GET {url} (or {url}/events) for it",
    }
    return JSONResponse(body, 202, headers={"Location": url, "X-Task-ID": str(record.id)})


async def _answer(
    app: Services, user_id: UUID, task_id: UUID, ended: Status | None, form: TranscriptionForm
) -> Response:
    """The answer to a task that ``ended`` so (None: deleted)."""
    url = f"/tasks/{task_id}"
    # The SDKs retry 409s and 5xx by themselves: each retry would be a new upload.
    final = {"X-Task-ID": str(task_id), "x-should-retry": "false"}
    # Decided by the end the feed saw, not the row read after it: a deleted task's feed
    # ends before its rows go, and a failed one may have been retried since.
    record = None if ended is None else await app.store.get(user_id, task_id)
    if record is None:
        message = "the task was deleted before it ended"
        raise Refused(404, message, code="task_deleted", headers=final)
    if ended is Status.CANCELLED:
        raise Refused(409, f"the task was cancelled ({url})", code="task_cancelled", headers=final)
    if ended is not Status.COMPLETED:
        reason = record.failure_reason or "unknown"
        message = f"the recording could not be transcribed: {reason} ({url})"
        raise Refused(422, message, code="transcription_failed", headers=final)
    headers = {"X-Task-ID": str(task_id), "X-Transcriber": app.transcriber}
    finished = Finished.of(record)
    match form.response_format:
        case "json":
            return JSONResponse({"text": finished.transcript}, headers=headers)
        case "verbose_json":
            return JSONResponse(verbose(record, form, app.transcriber), headers=headers)
        case "text":
            body = finished.txt()
        case "srt":
            body = finished.srt()
        case "vtt":
            body = finished.vtt()
    return Response(body, media_type=_MEDIA_TYPES[form.response_format], headers=headers)


ROUTES = [Route(PATH, Transcriptions())]
