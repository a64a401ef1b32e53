"""Every setting of the service, from ``MANAGER_*`` environment variables or ``.env``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from speech.cpus import cpu_count
from store.config import DatabaseSettings
from supervisor.config import SupervisorConfig
from web.trusted import DEFAULT_TRUSTED_NETWORKS, TrustedNetworks, parse_networks

#: The supervisor's defaults: the settings below take theirs from it, so each is written once.
_SUPERVISOR = SupervisorConfig()


class Settings(DatabaseSettings):
    """Service settings; the database ones (and their ILPS names) come from DatabaseSettings."""

    debug_mode: bool = True
    service_name: str = "ilps-service-task-manager"
    http_host: str = "0.0.0.0"
    http_port: int = Field(8064, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Apply the Alembic migrations at start.
    migrate_on_start: bool = True

    auth_mode: Literal["jwt", "gateway"] = "jwt"
    auth_jwt_secret: SecretStr | None = None
    auth_jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS512"
    #: PEM public key (or a path to one) for RS256/ES256 tokens.
    auth_jwt_public_key: str | None = None
    auth_gateway_header: str = "X-User-Id"
    #: Comma-separated CIDRs whose peers may assert a user id (gateway mode, ILPS routes).
    trusted_networks: str = DEFAULT_TRUSTED_NETWORKS

    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
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

    @field_validator("trusted_networks")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def trusts_identity(self) -> bool:
        """Whether some route takes a user id on trust (and so checks the peer)."""
        return self.auth_mode == "gateway" or self.ilps_compat

    def trusted(self) -> TrustedNetworks:
        return TrustedNetworks(parse_networks(self.trusted_networks))

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
