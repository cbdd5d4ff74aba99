"""Newsletter addresses and the addresses that must never be mailed again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..config import DEFAULT_LANGUAGE
from ..extensions import db
from .base import BigPk, CreatedAt
from .statuses import SubscriberStatus


class Subscriber(db.Model):
    """A newsletter address and the consent record a regulator asks for."""

    __tablename__ = "subscribers"

    id: Mapped[BigPk]
    # As typed (normalised by email-validator): what we write to.
    email: Mapped[str] = mapped_column(String(320))
    # Case-folded form: one row per address whatever its case.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE)
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING)
    created_at: Mapped[CreatedAt]
    # Consent: when, from where, and how it was confirmed or withdrawn.
    consent_at: Mapped[datetime | None] = mapped_column(DateTime)
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    consent_page: Mapped[str | None] = mapped_column(String(2000))
    consent_user_agent: Mapped[str | None] = mapped_column(String(400))
    consent_source: Mapped[str | None] = mapped_column(String(32))  # form, api, import, account
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_ip: Mapped[str | None] = mapped_column(String(45))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribe_method: Mapped[str | None] = mapped_column(String(32))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    # Why consent ended when it was not the subscriber's own click (a complaint, a bounce).
    unsubscribe_reason: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_subscribers_status_language", "status", "language", "id"),)


class Suppression(db.Model):
    """An address that must not be mailed again (hard bounce, complaint).

    Only a keyed hash of the case-folded address is kept, so erasing a subscriber erases the
    address while the suppression still works.
    """

    __tablename__ = "suppressions"

    id: Mapped[BigPk]
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))  # hard_bounce, complaint, erased
    detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[CreatedAt]
