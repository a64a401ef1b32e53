"""Every setting of the service, from ``MANAGER_*`` environment variables or ``.env``."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr

from store.config import DatabaseSettings
from supervisor.config import SupervisorConfig


def _cpu_count() -> int:
    return os.cpu_count() or 1


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

    auth_mode: Literal["jwt", "gateway"] = "jwt"
    auth_jwt_secret: SecretStr | None = None
    auth_jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS512"
    #: PEM public key (or a path to one) for RS256/ES256 tokens.
    auth_jwt_public_key: str | None = None
    auth_gateway_header: str = "X-User-Id"

    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    ilps_compat: bool = False

    capacity: int = Field(default_factory=_cpu_count, ge=1)
    stage_attempts: int = Field(3, ge=1, le=20)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_cap_seconds: float = Field(30.0, ge=0)
    stage_timeout_seconds: float = Field(600.0, gt=0)
    max_restarts: int = Field(3, ge=0)
    restart_period_seconds: float = Field(60.0, gt=0)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    sse_ping_seconds: float = Field(15.0, gt=0)
    sse_retry_ms: int = Field(3000, ge=0)

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
