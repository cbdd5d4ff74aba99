"""What comes back: bounces, complaints and mailto unsubscribes."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigPk, utcnow


class InboundKind(enum.StrEnum):
    """What an inbound message turned out to be."""

    PENDING = "pending"  # stored, not yet processed
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    DELAYED = "delayed"  # a delay notice (DSN Action: delayed): still queued, not a bounce
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    UNKNOWN = "unknown"


class InboundMessage(db.Model):
    """One message that came back (listener, IMAP, webhook): what it was and what it changed.

    Stored raw before processing, so a crash while processing loses nothing; the raw bytes are
    dropped once it is understood and kept (capped) when it is not, for staff.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[BigPk]
    source: Mapped[str] = mapped_column(String(16))  # smtp, lmtp, imap, ses, postmark
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    recipients: Mapped[str | None] = mapped_column(String(2000))
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(16), default=InboundKind.PENDING)
    # What the message changed, in words for staff ("subscriber 12 bounced", "nothing").
    outcome: Mapped[str | None] = mapped_column(String(500))
    status_code: Mapped[str | None] = mapped_column(String(16))  # DSN Status, e.g. 5.1.1
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("digests.id", ondelete="SET NULL"), index=True
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_inbound_messages_kind_received_at", "kind", "received_at"),)
