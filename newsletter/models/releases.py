"""Releases and the digests that carry them, with their schedules."""

from __future__ import annotations

import enum
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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..config import DEFAULT_TIMEZONE
from ..extensions import db
from .base import BigPk, CreatedAt, utcnow

# The text a release is searched by, as a tsvector in its language's configuration. The archive
# query and the GIN index of migration 0006 must use this exact expression, or PostgreSQL will
# not use the index. The index lives in the migration only (PostgreSQL only, and Alembic cannot
# compare expression indexes): ``UNMANAGED_INDEXES`` keeps ``flask db check`` from flagging it.
RELEASE_SEARCH_EXPRESSION = (
    "to_tsvector(CASE WHEN language = 'fr' THEN 'french'::regconfig "
    "ELSE 'english'::regconfig END, "
    "coalesce(title, '') || ' ' || coalesce(dateline, '') || ' ' || coalesce(summary, '') "
    "|| ' ' || coalesce(body_html, ''))"
)


UNMANAGED_INDEXES = frozenset({"ix_releases_search"})


class Release(db.Model):
    """An official news release."""

    __tablename__ = "releases"

    id: Mapped[BigPk]
    title: Mapped[str] = mapped_column(String(300))
    dateline: Mapped[str | None] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised with nh3 on the way in
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    video_url: Mapped[str | None] = mapped_column(String(2000))
    language: Mapped[str] = mapped_column(String(8))
    published_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # Feed entry id (or link) so a re-import updates instead of duplicating.
    source_guid: Mapped[str | None] = mapped_column(String(2000), unique=True)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Public archive (issue 13): the release this one translates; translations of one original
    # all point at it, so the original and its translations form one group.
    translation_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (Index("ix_releases_language_published_at", "language", "published_at"),)


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


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


class DigestStatus(enum.StrEnum):
    """The contract's statuses; pausing is a flag and cancelling a failure with a reason."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


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
