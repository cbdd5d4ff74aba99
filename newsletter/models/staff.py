"""Staff: the audit log, two-factor login, outgoing webhooks (issue 14)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigPk, CreatedAt, utcnow


class AuditEntry(db.Model):
    """Who did what, to what, when and from where. Rows are only ever inserted: no foreign key
    (an erased account or token must not take its history with it), and on PostgreSQL a
    trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[BigPk]
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_token_id: Mapped[int | None] = mapped_column(BigInteger)
    # The actor's address at the time, so the log reads without joins after a change.
    actor_label: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_ids: Mapped[str | None] = mapped_column(Text)  # comma-separated
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[str | None] = mapped_column(Text)  # JSON object


class StaffTotp(db.Model):
    """A staff member's TOTP secret; ``confirmed_at`` is set once a first code proved it."""

    __tablename__ = "staff_totp"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[CreatedAt]
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The last accepted time step: a code seen once is never accepted again (replay).
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class StaffRecoveryCode(db.Model):
    """One single-use recovery code, stored as a keyed hash."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[BigPk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[CreatedAt]
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebhookEndpoint(db.Model):
    """A receiver of outgoing events; disabled after repeated consecutive failures."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[BigPk]
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))  # whsec_<base64>
    events: Mapped[str] = mapped_column(Text)  # space-separated event types
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[CreatedAt]


class WebhookDelivery(db.Model):
    """One event for one endpoint, written in the transaction of the change it reports."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[BigPk]
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[CreatedAt]
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )
