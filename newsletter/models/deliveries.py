"""Digest deliveries: one row per digest and subscriber, the unit the senders claim."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigPk
from .statuses import DeliveryStatus


class Delivery(db.Model):
    """One digest to one subscriber; marked sent only once the SMTP server accepted it."""

    __tablename__ = "deliveries"

    id: Mapped[BigPk]
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Who holds the claim: only that sender may record the outcome (issue 10).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_response: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id", name="uq_deliveries_digest_subscriber"),
        Index("ix_deliveries_status_digest_id", "status", "digest_id"),
    )
