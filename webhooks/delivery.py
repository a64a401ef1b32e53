"""The delivery loop: sends what the outbox holds, signed, on Svix's retry schedule.

One loop per process, in the service's task group. It sleeps until a transition
recorded here wakes it, or until the next scheduled retry is due (a timer, capped so
deliveries recorded or redelivered elsewhere are found too); it never polls busily.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio
import httpx

from store.deliveries import DELIVERED, FAILED, GONE, PENDING, REFUSED, DeliveryStore, Due, Outcome
from store.webhook_secrets import WebhookSecretStore
from supervisor.ports import JournalUnavailable
from webhooks.signing import secret_key, signatures
from webhooks.urls import Address, first_refused, literal_address

log = logging.getLogger(__name__)

#: Seconds before each retry after a failed attempt (Svix's schedule): then it gives up.
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: Of a receiver's answer, at most this much is read.
_BODY_LIMIT = 4096
_BATCH = 16
#: Longest sleep without looking: another instance may have recorded something.
_IDLE_CAP = 60.0


class Waker:
    """Wakes the loop when a delivery was recorded; a wake-up while awake is kept."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until notified, or ``seconds`` at most."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
        self._event = anyio.Event()


Resolve = Callable[[str, int], Awaitable[list[Address]]]
#: Told of every attempt once it is logged (a hook for metrics, and for tests).
Attempted = Callable[[Due, Outcome], None]


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (OSError when it does not)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = (literal_address(str(info[4][0]).split("%")[0]) for info in infos)
    return [a for a in found if a is not None]


def message(due: Due, task_url_base: str) -> bytes:
    """The thin payload: what happened, when, to which task; the receiver reads the rest."""
    body = {
        "type": due.event_type,
        "timestamp": due.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "task_id": str(due.task_id),
            "user_id": str(due.user_id),
            "status": due.task_status,
            "url": f"{task_url_base}/tasks/{due.task_id}",
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Sender:
    """Sends due deliveries and logs each attempt; ``run`` is the loop."""

    def __init__(
        self,
        store: DeliveryStore,
        *,
        key: bytes,
        task_url_base: str,
        timeout: float,
        allow_private: bool,
        retry_scale: float = 1.0,
        resolver: Resolve = resolve,
        transport: httpx.AsyncBaseTransport | None = None,
        secrets: WebhookSecretStore | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._secrets = secrets
        self._base = task_url_base
        self._timeout = timeout
        self._allow_private = allow_private
        self._scale = retry_scale
        self._resolve = resolver
        self._transport = transport
        self.waker = Waker()
        self.attempted: Attempted = lambda due, outcome: None

    async def run(self) -> None:
        """Deliver until cancelled; an unavailable database is waited out."""
        outage = 0
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, transport=self._transport
        ) as client:
            while True:
                try:
                    await self._round(client)
                    outage = 0
                except JournalUnavailable as error:
                    outage += 1
                    log.warning("webhooks: database unavailable (%s); trying again", error)
                    await anyio.sleep(min(30.0, 0.5 * 2**outage))

    async def _round(self, client: httpx.AsyncClient) -> None:
        # A claim hides a delivery past the longest send: not picked twice meanwhile.
        due = await self._store.claim(_BATCH, lease=2 * self._timeout + 5)
        if due:
            async with anyio.create_task_group() as group:
                for delivery in due:
                    group.start_soon(self._deliver, client, delivery)
            return
        seconds = await self._store.seconds_to_next()
        await self.waker.wait(_IDLE_CAP if seconds is None else min(_IDLE_CAP, max(0.0, seconds)))

    async def _deliver(self, client: httpx.AsyncClient, due: Due) -> None:
        outcome = await self.attempt(client, due)
        try:
            await self._store.record(due.id, outcome)
            if outcome.state == GONE:
                await self._store.stop_url(due.url)
        except JournalUnavailable as error:
            # Unlogged, the delivery stays leased: it is sent again when the lease ends.
            log.warning("webhook %s: attempt not logged (%s); it will be sent again", due.id, error)
            return
        self.attempted(due, outcome)
        log.info(
            "webhook %s to %s: attempt %d %s (%s)",
            due.id,
            urlsplit(due.url).netloc,
            due.attempts + 1,
            outcome.state,
            outcome.status_code or outcome.error,
        )

    async def attempt(self, client: httpx.AsyncClient, due: Due) -> Outcome:
        """One try: resolve and check the host, send, and judge the answer."""
        started, clock = datetime.now(UTC), time.monotonic()

        def outcome(state: str, code: int | None = None, error: str | None = None) -> Outcome:
            delay = None
            if state == PENDING:
                if due.step >= len(SCHEDULE):
                    state = FAILED
                else:
                    delay = SCHEDULE[due.step] * self._scale
            return Outcome(state, started, time.monotonic() - clock, code, error, delay)

        parts = urlsplit(due.url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        pinned: Address | None = None
        # One deadline for the lookup and the send: a slow resolver must not outlast the
        # claim's lease, or another round would send the delivery a second time.
        deadline = anyio.current_time() + self._timeout
        if not self._allow_private:
            try:
                with anyio.fail_after(self._timeout):
                    addresses = await self._resolve(host, port)
            except TimeoutError:
                return outcome(PENDING, error="timed out resolving the host name")
            except OSError:
                return outcome(PENDING, error="the host name did not resolve")
            refused = first_refused(addresses)
            if refused is not None:
                return outcome(REFUSED, error=f"refused: the host resolves to {refused}")
            if not addresses:
                return outcome(PENDING, error="the host name did not resolve")
            pinned = addresses[0]  # connect to what was checked, not to a second lookup
        try:
            with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                code = await self._post(client, due, pinned)
        except TimeoutError:
            return outcome(PENDING, error="timed out")
        except httpx.HTTPError as error:
            log.debug("webhook %s: %r", due.id, error)
            return outcome(PENDING, error=_short(error))
        except Exception:  # a URL httpx cannot send, say: logged here, never a crash
            log.warning("webhook %s: the request could not be made", due.id, exc_info=True)
            return outcome(PENDING, error="the request could not be made")
        if 200 <= code < 300:
            return outcome(DELIVERED, code)
        return outcome(GONE if code == 410 else PENDING, code)

    async def _keys(self, due: Due) -> list[bytes]:
        """The service's key for its own URL; for a task's URL its owner's secrets (every
        one inside a rotation's overlap), else, for an owner who made none, the service's."""
        if due.service_wide or self._secrets is None:
            return [self._key]
        owned = await self._secrets.signing(due.user_id)
        return [secret_key(secret) for secret in owned] or [self._key]

    async def _post(self, client: httpx.AsyncClient, due: Due, pinned: Address | None) -> int:
        body = message(due, self._base)
        keys = await self._keys(due)
        stamp = int(time.time())
        webhook_id = str(due.id)
        headers = {
            "content-type": "application/json",
            "user-agent": "service-task-manager-webhooks",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures(keys, webhook_id, stamp, body),
        }
        url = httpx.URL(due.url)
        extensions = {}
        if pinned is not None:
            headers["host"] = url.netloc.decode("ascii")
            extensions["sni_hostname"] = url.host
            url = url.copy_with(host=str(pinned))
        request = client.build_request(
            "POST", url, content=body, headers=headers, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= _BODY_LIMIT:
                    break  # a receiver's essay is not our concern
        finally:
            await response.aclose()
        return response.status_code


def _short(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "could not connect"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"the request failed ({type(error).__name__})"
