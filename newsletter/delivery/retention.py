"""Purging stored mail: delivered bodies emptied after the retention time, deliveries trimmed.

The outbox keeps every message's facts (kind, recipient, status, attempts, times) for the
per-address caps and for whoever must show what was sent; only the body, which holds live
links and one-time codes, goes. Queued and sending messages are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update

from ..extensions import db
from ..models import Delivery, DeliveryStatus, OutboxMessage, OutboxStatus, utcnow


@dataclass(frozen=True)
class PurgeReport:
    bodies: int
    deliveries: int


def purge_delivered_mail(retention: timedelta, now: datetime | None = None) -> PurgeReport:
    """Empty the bodies of messages sent or given up before ``now - retention`` and drop the
    relay's answer text of deliveries as old; the caller commits."""
    cutoff = (now or utcnow()) - retention
    outbox = OutboxMessage.__table__
    bodies = db.session.execute(
        update(outbox)
        .where(
            outbox.c.status.in_([OutboxStatus.SENT.value, OutboxStatus.FAILED.value]),
            func.coalesce(outbox.c.sent_at, outbox.c.created_at) < cutoff,
            func.length(outbox.c.message) > 0,
        )
        .values(message=b"")
    ).rowcount
    deliveries = Delivery.__table__
    trimmed = db.session.execute(
        update(deliveries)
        .where(
            deliveries.c.status.in_(
                [DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED]
            ),
            deliveries.c.updated_at < cutoff,
            deliveries.c.smtp_response.is_not(None),
        )
        .values(smtp_response=None)
    ).rowcount
    return PurgeReport(bodies=bodies or 0, deliveries=trimmed or 0)
