"""The schema: tasks, their event journal, their audio, their webhook outbox, and the
cluster (its instances and who owns each live task)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Statuses after which a task has no actor; kept here too for the partial index.
TERMINAL_SQL = "('completed', 'failed', 'cancelled')"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID)
    title: Mapped[str] = mapped_column(String(50))
    text_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    reference_text: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    #: How many times the task has been run (retry adds one).
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    #: The seq of the newest event; the next one is last_seq + 1.
    last_seq: Mapped[int] = mapped_column(Integer)
    transcript: Mapped[str | None] = mapped_column(Text)
    #: IPA tokens separated by spaces (ILPS's ``result``).
    result: Mapped[str | None] = mapped_column(Text)
    words: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    phonemes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    #: The transcript's segments with times: ``[{"text", "start", "end"}]`` (0006).
    segments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    accuracy: Mapped[float | None] = mapped_column(Float)
    mistakes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: sha256 of the upload and fields (store/fingerprint.py): a repeated key must match
    #: it. NULL on rows from before migration 0003, which match any repeat.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: Where this task's webhooks go, besides the service-wide URL.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        # Listing: a user's tasks, newest first, keyset-paginated on (created_at, id).
        Index("ix_tasks_user_created", "user_id", text("created_at DESC"), text("id DESC")),
        # Recovery: the live tasks, found without scanning finished ones.
        Index(
            "ix_tasks_live",
            "created_at",
            postgresql_where=text(f"status NOT IN {TERMINAL_SQL}"),
        ),
        # Retention: the tasks that ended, by when.
        Index(
            "ix_tasks_ended",
            "completed_at",
            postgresql_where=text(f"status IN {TERMINAL_SQL}"),
        ),
    )


class StatusCountRow(Base):
    """A change to the number of tasks in one status (+1, -1, or a fold of many).

    Triggers on ``tasks`` append these (migration 0008) and fold them now and then: the
    sum per status is the number of tasks in it, read without scanning ``tasks``.
    """

    __tablename__ = "task_status_counts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    __tablename__ = "task_events"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AudioRow(Base):
    __tablename__ = "task_audio"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: Overrides for headerless PCM, as sent with the upload.
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    #: Seconds of audio, known once decoded.
    duration: Mapped[float | None] = mapped_column(Float)
    #: Stored uncompressed (STORAGE EXTERNAL, migration 0002), as is ``pcm``.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: 16 kHz mono s16le, kept after decoding so retries skip it.
    pcm: Mapped[bytes | None] = mapped_column(LargeBinary)


class DeliveryRow(Base):
    """One webhook message to one URL (the outbox); its ``id`` is the ``webhook-id``."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(UUID)
    url: Mapped[str] = mapped_column(String(2048))
    #: Sent to MANAGER_WEBHOOK_URL rather than to the task's own URL.
    service_wide: Mapped[bool] = mapped_column(Boolean)
    event_type: Mapped[str] = mapped_column(String(32))
    task_status: Mapped[str] = mapped_column(String(16))
    #: The seq of the event it announces.
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: pending, delivered, gone (410), failed (schedule used up), refused (private address).
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: The place in the retry schedule; a redelivery starts it again.
    step: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: When it is due (while pending; a claimed one is pushed past its send's timeout).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Until when a claimed attempt is in flight (a redelivery meanwhile changes nothing).
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
    )


class WebhookSecretRow(Base):
    """A user's webhook signing secret; a rotated one stays valid until ``retired_at``."""

    __tablename__ = "webhook_secrets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID, index=True)
    #: ``whsec_<base64>``: kept to sign with, shown to its owner once.
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: Null while current; once rotated, the end of the overlap it still signs in.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AttemptRow(Base):
    """One try at sending a delivery: what came back, how long it took, what is next."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Seconds.
    duration: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InstanceRow(Base):
    """A member of the cluster: one running service process on this database.

    It is alive while its session holds the advisory lock ``lock_key`` and its lease
    (renewed on the database clock) has not run out; the others delete a dead one's
    row, which leaves its live tasks unowned for them to claim.
    """

    __tablename__ = "cluster_instances"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lock_key: Mapped[int] = mapped_column(BigInteger, unique=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LiveTaskRow(Base):
    """One row per live (non-terminal) task: who owns it, under which fencing generation.

    Small by design (ended tasks leave it), so claims scan only what can be claimed.
    """

    __tablename__ = "live_tasks"
    __table_args__ = (
        Index("ix_live_tasks_unowned", "queued_at", postgresql_where=text("owner IS NULL")),
        Index("ix_live_tasks_owner", "owner"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    #: The instance that runs it; NULL while it waits for one (its instance died or left).
    owner: Mapped[uuid.UUID | None] = mapped_column(
        UUID, ForeignKey("cluster_instances.id", ondelete="SET NULL")
    )
    #: Every claim takes a new value from ``live_task_generations``: a write fenced by
    #: an older one is refused.
    generation: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: A cancel asked for on an instance that does not own the task; its owner carries it out.
    cancel_reason: Mapped[str | None] = mapped_column(Text)
