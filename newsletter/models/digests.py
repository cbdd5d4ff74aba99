"""Digests: their recurring schedules, each run, and which releases a run carried."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..config import DEFAULT_TIMEZONE
from ..extensions import db
from .base import BigPk, CreatedAt, utcnow
from .releases import Release
from .statuses import DigestStatus, ScheduleStatus


class DigestSchedule(db.Model):
    """A recurring digest: a cron expression in a named time zone."""

    __tablename__ = "digest_schedules"

    id: Mapped[BigPk]
    language: Mapped[str] = mapped_column(String(8))
    cron: Mapped[str] = mapped_column(String(120))  # "minute hour day month day_of_week"
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    subject: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=ScheduleStatus.ACTIVE)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


digest_releases = Table(
    "digest_releases",
    db.Model.metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
)


class Digest(db.Model):
    """One run of a digest: what was sent, to how many, and how it went."""

    __tablename__ = "digests"

    id: Mapped[BigPk]
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("digest_schedules.id", ondelete="SET NULL")
    )
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.SCHEDULED)
    send_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[CreatedAt]
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set by the fan-out; sent and failed are recounted from deliveries as batches land.
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Rendered once per digest, personalised per recipient by substitution.
    rendered_message: Mapped[bytes | None] = mapped_column(LargeBinary)

    releases: Mapped[list[Release]] = relationship(secondary=digest_releases)

    __table_args__ = (
        # One run per schedule and due time: a job firing twice cannot send twice.
        UniqueConstraint("schedule_id", "send_at", name="uq_digests_schedule_id_send_at"),
        Index("ix_digests_status_send_at", "status", "send_at"),
        Index("ix_digests_language_status", "language", "status", "finished_at"),
    )


# A release goes into one digest per language, recorded when that digest is composed (issue 10):
# the primary key makes a second carrier impossible even if two composers ever raced.
release_carriers = Table(
    "release_carriers",
    db.Model.metadata,
    Column("language", String(8), primary_key=True),
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), nullable=False, index=True),
)
