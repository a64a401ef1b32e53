"""Database settings, with the names and defaults of the original ILPS service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import URL


class DatabaseSettings(BaseSettings):
    """Where the journal lives: an external PostgreSQL, or an embedded one in the data dir."""

    model_config = SettingsConfigDict(env_prefix="MANAGER_", env_file=".env", extra="ignore")

    db_postgres_host: str | None = Field(None, description="PostgreSQL host; unset: embedded")
    db_postgres_port: int = Field(5432, ge=1, le=65535)
    db_postgres_user: str = "service_task_manager"
    db_postgres_password: SecretStr | None = None
    db_postgres_name: str = "tasks"
    data_dir: Path = Path(".data")
    db_pool_size: int = Field(20, ge=1, le=200)

    @model_validator(mode="after")
    def _password_with_host(self) -> DatabaseSettings:
        if self.db_postgres_host and self.db_postgres_password is None:
            raise ValueError(
                "MANAGER_DB_POSTGRES_PASSWORD is required when MANAGER_DB_POSTGRES_HOST is set"
            )
        return self

    @property
    def embedded(self) -> bool:
        return not self.db_postgres_host

    def external_url(self) -> URL:
        """The SQLAlchemy URL of the configured external server."""
        assert self.db_postgres_host is not None
        password = (
            self.db_postgres_password.get_secret_value() if self.db_postgres_password else None
        )
        return URL.create(
            "postgresql+asyncpg",
            username=self.db_postgres_user,
            password=password,
            host=self.db_postgres_host,
            port=self.db_postgres_port,
            database=self.db_postgres_name,
        )
