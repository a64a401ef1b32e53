"""Every setting of the service, from ``MANAGER_*`` environment variables or ``.env``."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from speech.cpus import cpu_count
from store.config import DatabaseSettings
from supervisor.config import SupervisorConfig
from web.header_limits import DEFAULT_MAX_HEADER_BYTES
from web.trusted import DEFAULT_TRUSTED_NETWORKS, TrustedNetworks, parse_networks
from webhooks.signing import secret_key
from webhooks.urls import MAX_URL_LENGTH, check_url

#: The supervisor's defaults: the settings below take theirs from it, so each is written once.
_SUPERVISOR = SupervisorConfig()


class Settings(DatabaseSettings):
    """Service settings; the database ones (and their ILPS names) come from DatabaseSettings."""

    debug_mode: bool = True
    service_name: str = "ilps-service-task-manager"
    http_host: str = "0.0.0.0"
    http_port: int = Field(8064, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``json``: one object per line with the request's and the task's context.
    log_format: Literal["text", "json"] = "text"
    #: Bearer token that ``GET /metrics`` requires; unset: open.
    metrics_token: SecretStr | None = None
    #: Apply the Alembic migrations at start.
    migrate_on_start: bool = True
    #: Print a development user's token in the start banner when the JWT secret is the
    #: generated one (the container image turns it off: logs are no place for a credential).
    print_dev_token: bool = True

    auth_mode: Literal["jwt", "gateway"] = "jwt"
    auth_jwt_secret: SecretStr | None = None
    auth_jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS512"
    #: PEM public key (or a path to one) for RS256/ES256 tokens.
    auth_jwt_public_key: str | None = None
    auth_gateway_header: str = "X-User-Id"
    #: Clock skew allowed on a token's ``iat``, ``nbf`` and ``exp``.
    auth_jwt_leeway_seconds: float = Field(5.0, ge=0, le=300)
    #: Tokens must carry this ``aud`` (unset: not checked, as ILPS issues none).
    auth_jwt_audience: str | None = None
    #: Tokens must carry this ``iss`` (unset: not checked).
    auth_jwt_issuer: str | None = None
    #: Comma-separated CIDRs whose peers may assert a user id (gateway mode, ILPS routes).
    #: The default serves the ILPS routes only: gateway mode needs it set explicitly.
    trusted_networks: str = DEFAULT_TRUSTED_NETWORKS
    #: Whether a user id taken from the gateway's header may be an operator
    #: (``MANAGER_ADMIN_USERS``); off, operators need a token.
    auth_gateway_operators: bool = False

    #: Operators (the console's operator view, ``/admin/...``): user ids, comma-separated.
    admin_users: Annotated[list[UUID], NoDecode] = []
    #: Origins of cross-origin front-ends allowed to call the API, comma-separated.
    cors_origins: Annotated[list[str], NoDecode] = []

    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    #: Uploads in flight at once (per process); the next one gets 503 and Retry-After.
    max_concurrent_uploads: int = Field(16, ge=1, le=1024)
    #: A request whose line and headers pass this many bytes gets 431 and a closed connection.
    max_header_bytes: int = Field(DEFAULT_MAX_HEADER_BYTES, ge=8192, le=1024 * 1024)
    ilps_compat: bool = False

    capacity: int = Field(default_factory=cpu_count, ge=1)
    stage_attempts: int = Field(_SUPERVISOR.stage_attempts, ge=1, le=20)
    backoff_base_seconds: float = Field(_SUPERVISOR.backoff_base, ge=0)
    backoff_cap_seconds: float = Field(_SUPERVISOR.backoff_cap, ge=0)
    stage_timeout_seconds: float = Field(_SUPERVISOR.stage_timeout, gt=0)
    max_restarts: int = Field(_SUPERVISOR.max_restarts, ge=0)
    restart_period_seconds: float = Field(_SUPERVISOR.restart_period, gt=0)
    shutdown_grace_seconds: float = Field(_SUPERVISOR.shutdown_grace, ge=0)
    sse_ping_seconds: float = Field(15.0, gt=0)
    sse_retry_ms: int = Field(3000, ge=0)
    #: How long ``POST /v1/audio/transcriptions`` waits for its task before answering 202
    #: with the task's URL: the longest recording (300 s) at a real-time factor of 1,
    #: twice the embedded recogniser's measured 0.49 (bench/README.md), queueing aside.
    transcription_wait_seconds: float = Field(300.0, gt=0)

    @field_validator("trusted_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _gateway_networks(self) -> Settings:
        if self.auth_mode == "gateway" and "trusted_networks" not in self.model_fields_set:
            raise ValueError(
                "MANAGER_AUTH_MODE=gateway needs MANAGER_TRUSTED_NETWORKS: set it to the "
                "gateway's addresses (CIDRs, e.g. 10.0.0.5/32); the header is believed only "
                "from there"
            )
        return self

    @property
    def trusts_identity(self) -> bool:
        """Whether some route takes a user id on trust (and so checks the peer)."""
        return self.auth_mode == "gateway" or self.ilps_compat

    def trusted(self) -> TrustedNetworks:
        return TrustedNetworks(parse_networks(self.trusted_networks))

    #: Receives every task's webhooks, besides each task's own ``webhook_url``.
    webhook_url: str | None = Field(None, max_length=MAX_URL_LENGTH)
    #: ``whsec_<base64>``; unset: generated once in the data dir.
    webhook_secret: SecretStr | None = None
    #: Send a webhook for every status change, not only the terminal ones.
    webhook_every_status: bool = False
    #: Let webhooks reach loopback, link-local and private addresses.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(15.0, gt=0, le=300)
    #: Multiplies every delay of the retry schedule (tests compress it).
    webhook_retry_scale: float = Field(1.0, gt=0, le=1)
    #: The service's address as receivers reach it: the base of the task URL in webhooks.
    public_url: str | None = Field(None, max_length=512)

    #: Service processes ``run.py`` starts on the one port, each a member of the cluster.
    processes: int = Field(1, ge=1, le=64)
    #: Seconds an instance that stops renewing (hung, cut off) keeps its tasks.
    lease_seconds: float = Field(10.0, ge=1, le=600)
    #: Live tasks one instance owns at once; the rest wait for whichever has room.
    claim_limit: int = Field(256, ge=1)
    #: How instances hear of each other's writes: ``listen`` (LISTEN/NOTIFY), or ``poll``
    #: where LISTEN is not available (PgBouncer in transaction mode).
    cluster_events: Literal["listen", "poll"] = "listen"
    #: Seconds between catch-ups when polling (and while LISTEN reconnects).
    poll_seconds: float = Field(1.0, gt=0, le=60)
    #: How this instance is named in the cluster and its logs; unset: host:pid.
    instance_name: str | None = Field(None, max_length=200)

    #: Remove the audio of tasks that ended this many days ago; unset: keep it.
    retention_audio_days: int | None = Field(None, ge=1)
    #: Remove whole tasks that ended this many days ago; unset: keep them.
    retention_task_days: int | None = Field(None, ge=1)

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _service_webhook_url(self) -> Settings:
        if self.webhook_url is not None:
            try:
                check_url(self.webhook_url, allow_private=self.webhook_allow_private)
            except ValueError as error:
                raise ValueError(f"MANAGER_WEBHOOK_URL: {error}") from None
        return self

    def task_url_base(self, port: int) -> str:
        """What ``/tasks/<id>`` is appended to in a webhook: the public URL, else where
        the service listens (``port``: the one it bound)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return f"http://{host}:{port}"

    @field_validator("admin_users", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return [origin.lower() for origin in origins]

    def supervisor_config(self) -> SupervisorConfig:
        return SupervisorConfig(
            capacity=self.capacity,
            stage_attempts=self.stage_attempts,
            backoff_base=self.backoff_base_seconds,
            backoff_cap=self.backoff_cap_seconds,
            stage_timeout=self.stage_timeout_seconds,
            max_restarts=self.max_restarts,
            restart_period=self.restart_period_seconds,
            shutdown_grace=self.shutdown_grace_seconds,
        )
