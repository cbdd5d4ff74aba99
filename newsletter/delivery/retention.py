"""Purging stored mail: delivered bodies emptied after the retention time, deliveries trimmed,
and the per-message history itself deleted once it is older than the history time.

The outbox keeps every message's facts (kind, recipient, status, attempts, times) for the
per-address caps and for whoever must show what was sent; only the body, which holds live
links and one-time codes, goes. Queued and sending messages are never touched. After
``DELIVERY_HISTORY_DAYS`` (13 months by default: a year of questions, with a margin) the rows
go too, so the tables do not grow forever (issue 11 #9); a finished digest keeps its own
counts (recipients, sent, failed), so its figures survive its deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from ..extensions import db
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)

FINISHED_DELIVERIES = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)
FINISHED_DIGESTS = (DigestStatus.SENT, DigestStatus.SKIPPED, DigestStatus.FAILED)


@dataclass(frozen=True)
class PurgeReport:
    bodies: int
    deliveries: int
    outbox_rows_deleted: int = 0
    deliveries_deleted: int = 0


def purge_delivered_mail(
    retention: timedelta, now: datetime | None = None, *, history: timedelta | None = None
) -> PurgeReport:
    """Empty the bodies of messages sent or given up before ``now - retention`` and drop the
    relay's answer text of deliveries as old; with ``history``, delete finished rows older than
    ``now - history`` outright. The caller commits."""
    now = now or utcnow()
    cutoff = now - retention
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
            deliveries.c.status.in_(FINISHED_DELIVERIES),
            deliveries.c.updated_at < cutoff,
            deliveries.c.smtp_response.is_not(None),
        )
        .values(smtp_response=None)
    ).rowcount
    outbox_deleted = deliveries_deleted = 0
    if history is not None:
        outbox_deleted, deliveries_deleted = _delete_history(now - history)
    return PurgeReport(
        bodies=bodies or 0,
        deliveries=trimmed or 0,
        outbox_rows_deleted=outbox_deleted,
        deliveries_deleted=deliveries_deleted,
    )


def _delete_history(cutoff: datetime) -> tuple[int, int]:
    outbox = OutboxMessage.__table__
    outbox_deleted = db.session.execute(
        delete(outbox).where(
            outbox.c.status.in_([OutboxStatus.SENT.value, OutboxStatus.FAILED.value]),
            func.coalesce(outbox.c.sent_at, outbox.c.created_at) < cutoff,
        )
    ).rowcount
    deliveries = Delivery.__table__
    # Only a finished digest's deliveries: a running one still needs every row (the unique
    # digest/subscriber pair is what stops a second send).
    finished = select(Digest.id).where(Digest.status.in_(FINISHED_DIGESTS))
    deliveries_deleted = db.session.execute(
        delete(deliveries).where(
            deliveries.c.status.in_(FINISHED_DELIVERIES),
            deliveries.c.updated_at < cutoff,
            deliveries.c.digest_id.in_(finished),
        )
    ).rowcount
    return outbox_deleted or 0, deliveries_deleted or 0
