"""The outbox: single messages (account mail, confirmations), fully rendered in the request's
transaction and sent by the worker."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigPk, CreatedAt, utcnow
from .statuses import OutboxStatus


class OutboxMessage(db.Model):
    """A fully rendered message waiting for the worker; written in the request's transaction."""

    __tablename__ = "outbox_messages"

    id: Mapped[BigPk]
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    # Case-folded recipient, for per-address caps.
    recipient_key: Mapped[str] = mapped_column(String(320))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Who holds the claim: only that sender may record the outcome (issue 10).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_messages_recipient_key_kind", "recipient_key", "kind", "created_at"),
    )
