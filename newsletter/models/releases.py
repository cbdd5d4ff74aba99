"""Releases: the official news releases the archive shows and the digests carry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
