"""The running service: database, supervisor and HTTP server under one task group.

If the supervisor dies, the task group cancels the server and the process
exits, so nothing keeps serving as if healthy.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus
from sqlalchemy import URL

from cluster.hub import EventHub
from cluster.member import ClusterConfig, ClusterMember
from cluster.membership import Membership
from cluster.remote import RemoteTasks
from ops.logs import install_context
from service.retention import Retention
from service.startup_errors import database_unusable
from speech.factory import build_pipeline, languages_of
from speech.settings import SpeechSettings
from store.cluster import ClusterStore
from store.database import Database, Silence, describe, open_database
from store.deliveries import DeliveryStore
from store.journal import PgJournal, WebhookPolicy
from store.migrate import upgrade
from store.tasks import TaskStore
from store.webhook_secrets import WebhookSecretStore
from supervisor import facts
from supervisor.claims import Claims
from supervisor.supervisor import Supervisor
from web.app import create_app
from web.auth import authenticator
from web.context import Services
from web.header_limits import limited_config
from web.in_flight import InFlight
from web.observed import Observed
from web.openai_api import transcriber_label
from web.settings import Settings
from webhooks.delivery import Sender
from webhooks.signing import generated_secret, secret_key

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the service decides how to stop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        #: Set once uvicorn accepts connections (and has logged its start).
        self.accepting = anyio.Event()

    def capture_signals(self) -> Any:
        return nullcontext()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.accepting.set()


@dataclass
class RunningService:
    services: Services
    port: int
    #: The database every instance of the cluster shares.
    url_of_database: URL | str
    _server: _Server
    _stopped: anyio.Event
    _in_flight: InFlight
    #: The webhook delivery loop (the routes see it only as ``services.webhooks``).
    sender: Sender

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def drain(self) -> None:
        """Refuse new tasks and stop every actor at a safe point (ending streams).

        HTTP goes on answering (new work gets 503) until ``close_http``: a closed
        listener would refuse the next client instead.
        """
        services = self.services
        services.draining.set()
        services.supervisor.shutdown()
        with anyio.move_on_after(services.settings.shutdown_grace_seconds + 5):
            await self._stopped.wait()

    async def close_http(self) -> None:
        """Once the requests in flight are answered (within the grace), close the listener."""
        patience = self.services.settings.shutdown_grace_seconds + 1
        began = anyio.current_time()
        with anyio.move_on_after(patience):
            await self._in_flight.answered()
        # One patience for both waits: uvicorn gives the requests since (a 503 each,
        # mostly) what is left of it, a second at least, so a stop takes no longer
        # than it did when uvicorn alone waited.
        left = patience - (anyio.current_time() - began)
        self._server.config.timeout_graceful_shutdown = max(1, math.ceil(left))
        log.info("drained: closing the listener")
        self._server.should_exit = True


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (OSError when that is refused).

    ``reuse_port``: one of several processes' sockets on the port (``SO_REUSEPORT``):
    the kernel spreads new connections over them evenly.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@asynccontextmanager
async def open_service(
    settings: Settings,
    speech: SpeechSettings,
    url: URL | str,
    sock: socket.socket | None = None,
) -> AsyncIterator[RunningService]:
    """Start everything; on exit, drain and stop. The socket listens before this yields.

    ``sock`` is a socket already bound (``bind``), which this then owns and closes;
    without one, it binds ``settings.http_host:http_port`` itself. The instance joins
    the cluster of every instance on this database.
    """
    if sock is None:
        sock = bind(settings.http_host, settings.http_port)
    with sock:
        if settings.migrate_on_start:
            # Serialised by alembic's lock on its version table: instances that start
            # together migrate once.
            await anyio.to_thread.run_sync(upgrade, url)  # alembic runs its own loop
        silence = Silence(settings.lease_seconds)  # the one timeout (store/database.py)
        async with open_database(url, pool_size=settings.db_pool_size, silence=silence) as database:
            async with _running(settings, speech, database, sock, url) as running:
                yield running


@asynccontextmanager
async def _running(
    settings: Settings,
    speech: SpeechSettings,
    database: Database,
    sock: socket.socket,
    url: URL | str,
) -> AsyncIterator[RunningService]:
    port = sock.getsockname()[1]
    sender = _sender(settings, database, port)
    policy = WebhookPolicy(settings.webhook_url, settings.webhook_every_status, sender.waker.notify)
    pipeline = build_pipeline(speech)
    config = settings.supervisor_config()
    claims = Claims(uuid.uuid4(), settings.claim_limit)
    journal = PgJournal(database, policy, claims)
    supervisor = Supervisor(journal, pipeline, config, claims=claims)
    cluster_store = ClusterStore(database)
    hub = EventHub(cluster_store, config.subscriber_buffer)
    services = Services(
        settings,
        database,
        TaskStore(database, claims),
        supervisor,
        authenticator(settings),
        sender,
        languages=languages_of(speech),
        transcriber=transcriber_label(speech),
        elsewhere=RemoteTasks(hub, cluster_store, claims, journal),
    )
    cluster = ClusterConfig(
        name=settings.instance_name or f"{socket.gethostname()}:{os.getpid()}",
        lease_seconds=settings.lease_seconds,
        poll=settings.cluster_events == "poll",
        poll_seconds=settings.poll_seconds,
    )
    membership = Membership(url, cluster.name, lease_seconds=cluster.lease_seconds)
    member = ClusterMember(url, cluster, membership, cluster_store, claims, services.door, hub)
    services.cluster = member
    store = services.store
    retention = Retention(
        store,
        audio_days=settings.retention_audio_days,
        task_days=settings.retention_task_days,
        removed=facts.retention_removed,
    )
    sender.attempted = lambda _, outcome: facts.webhook_attempted(outcome.state, outcome.duration)
    install_context()
    in_flight = InFlight(Observed(create_app(services)))
    server_config = limited_config(
        in_flight,
        max_header_bytes=settings.max_header_bytes,
        lifespan="off",
        # scope["client"] stays the TCP peer: the trusted-network check must not be
        # fooled by an X-Forwarded-For that anyone on loopback can send.
        proxy_headers=False,
        # uvicorn's loggers propagate to the root handler: one format for every line.
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.debug_mode,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 1,
    )
    server = _Server(server_config)
    stopped = anyio.Event()
    running = RunningService(services, port, url, server, stopped, in_flight, sender)
    try:
        async with anyio.create_task_group() as group:

            async def run_supervisor(*, task_status: TaskStatus[None]) -> None:
                try:
                    await supervisor.run(task_status=task_status)
                finally:
                    stopped.set()

            await membership.join(claims.instance_id)  # admissions are owned from now on
            await group.start(run_supervisor)
            await group.start(member.run)
            group.start_soon(_serve, server, sock, running)
            # Webhooks and retention stop with the service: an interrupted send is
            # leased, not lost, and goes out again after the restart.
            background = anyio.CancelScope()
            group.start_soon(_background, background, sender, retention)
            try:
                await server.accepting.wait()  # if uvicorn fails instead, the group cancels this
                yield running
            finally:
                with anyio.CancelScope(shield=True):
                    await running.drain()
                    await member.leave()  # the actors have stopped: hand the tasks over
                    background.cancel()
                    # Last: until now a new request is answered (503 for new work).
                    await running.close_http()
    finally:
        if pipeline.aclose is not None:
            with anyio.CancelScope(shield=True):
                await pipeline.aclose()


def _sender(settings: Settings, database: Database, port: int) -> Sender:
    secret = settings.webhook_secret
    key = secret_key(
        secret.get_secret_value() if secret is not None else generated_secret(settings.data_dir)
    )
    return Sender(
        DeliveryStore(database),
        key=key,
        task_url_base=settings.task_url_base(port),
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
        retry_scale=settings.webhook_retry_scale,
        secrets=WebhookSecretStore(database),
    )


async def _background(scope: anyio.CancelScope, sender: Sender, retention: Retention) -> None:
    with scope:
        async with anyio.create_task_group() as group:
            group.start_soon(sender.run)
            if retention.enabled:
                group.start_soon(retention.run)


async def _serve(server: _Server, sock: socket.socket, running: RunningService) -> None:
    await server.serve(sockets=[sock])
    if not running.services.draining.is_set():
        raise RuntimeError("the HTTP server stopped on its own")


#: Young collections after 10,000 net allocations instead of 700, older ones as before
#: relative to them: full collections come about 14 times less often.
_GC_THRESHOLDS = (10_000, 10, 10)


def _tune_garbage_collector() -> None:
    """Fewer pauses of the event loop for the cycle collector (bench/README.md).

    What start-up made (modules, models, the app) is frozen out of every later pass:
    a full collection walked that whole heap, 50-90 ms a time, the p99 of every
    route under load. And with thousands of live actors a full pass took 80-320 ms
    at the default thresholds, several times a second under admission load; with
    ``_GC_THRESHOLDS`` the admission p99 went from ~300 ms to ~80 ms. Garbage in
    cycles is still collected, a little later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def serve_forever(
    settings: Settings,
    speech: SpeechSettings,
    url: URL | str,
    sock: socket.socket | None = None,
    on_ready: Callable[[RunningService], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully.

    ``on_ready`` is called once the service is up: tasks recovered, HTTP accepting.
    """
    try:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with open_service(settings, speech, url, sock) as running:
                _tune_garbage_collector()
                if on_ready is not None:
                    on_ready(running)
                async for signum in signals:
                    log.warning("received %s: draining", signal.Signals(signum).name)
                    break
                await running.drain()
    except Exception as error:
        reason = database_unusable(error)
        if reason is None:
            raise
        # One line, as for the other start-up failures (README): not a traceback.
        sys.stderr.write(f"cannot use the database {describe(url)}: {reason}\n")
        raise SystemExit(1) from None
