"""What every handler needs, hung on the app: settings, store, supervisor, auth, webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import anyio
from starlette.requests import HTTPConnection

from cluster.member import ClusterMember
from speech import recognise
from speech.languages import Languages
from store.database import Database
from store.tasks import TaskStore
from supervisor.door import Elsewhere, TaskDoor
from supervisor.supervisor import Supervisor
from web.auth import Authenticator, Caller
from web.settings import Settings
from web.upload_spool import UploadSlots


class _Wakeable(Protocol):
    def notify(self) -> None: ...


class Outbox(Protocol):
    """The webhook outbox's sender as the routes see it: a redelivery wakes it. The loop
    itself runs beside the HTTP server (``webhooks.delivery``), not in it."""

    @property
    def waker(self) -> _Wakeable: ...


@dataclass
class Services:
    settings: Settings
    database: Database
    store: TaskStore
    supervisor: Supervisor
    auth: Authenticator
    #: Sends the webhook outbox; redeliveries wake it.
    webhooks: Outbox
    #: Every command on a task goes through it.
    door: TaskDoor = field(init=False)
    #: Uploads in flight, at most ``MANAGER_MAX_CONCURRENT_UPLOADS``.
    uploads: UploadSlots = field(init=False)
    #: Set on SIGTERM: new tasks get 503 while the actors stop.
    draining: anyio.Event = field(default_factory=anyio.Event)
    #: What the configured transcriber recognises: other languages are a 422 at creation.
    languages: Languages = recognise.SUPPORTED
    #: The tasks other instances run (None: no cluster, as in some tests).
    elsewhere: Elsewhere | None = None
    #: This instance as a member of the cluster, once it has joined.
    cluster: ClusterMember | None = None
    #: Which transcriber answers (``POST /v1/audio/transcriptions`` says so).
    transcriber: str = "embedded"

    def __post_init__(self) -> None:
        self.door = TaskDoor(self.supervisor, self.elsewhere)
        self.uploads = UploadSlots(self.settings.max_concurrent_uploads)

    def is_operator(self, caller: Caller) -> bool:
        """Listed in ``MANAGER_ADMIN_USERS`` (no token claim makes one); a user id from the
        gateway's header only where ``MANAGER_AUTH_GATEWAY_OPERATORS`` says."""
        if caller.from_header and not self.settings.auth_gateway_operators:
            return False
        return caller.user_id in self.settings.admin_users


def services(connection: HTTPConnection) -> Services:
    found: Services = connection.app.state.services
    return found
