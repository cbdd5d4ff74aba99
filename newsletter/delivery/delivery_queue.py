"""The delivery queue: claim deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, with a lease
for crash recovery), renew and sweep leases (putting back what a dead worker held), and finish
a digest once nothing is left. Outcomes are written by ``delivery_outcomes``; how long a lease
lasts and when a try is the last come from ``retry_policy``."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from ..domain.webhooks import emit_event
from ..extensions import db
from ..models import Delivery, Digest, Subscriber, utcnow
from ..models.statuses import DeliveryStatus, DigestStatus, SubscriberStatus
from .retry_policy import GAVE_UP_ON_CRASHES, UNCLAIMED, claim_values, delivery_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    digest_id: int
    subscriber_id: int
    attempts: int
    email: str
    name: str | None
    email_key: str
    # The claim this delivery was taken under: only its holder may record an outcome.
    token: str = ""


def active_digest_ids() -> list[int]:
    """Digests being sent and not paused (a handful at most)."""
    return list(
        db.session.scalars(
            select(Digest.id)
            .where(Digest.status == DigestStatus.SENDING, Digest.paused.is_(False))
            .order_by(Digest.id)
        )
    )


def new_claim_token() -> str:
    """A fresh ownership token for one claim (written into the claimed rows)."""
    return uuid.uuid4().hex


def _closed(status: DeliveryStatus, reason: str, now: datetime) -> dict:
    """A claimed delivery ended for good without a send: no lease, no owner, the reason why."""
    return {"status": status, "smtp_response": reason, "updated_at": now, **UNCLAIMED}


def release_expired_leases(now: datetime) -> int:
    """Deliveries claimed by a worker that died: back to the queue (the try stays counted).

    A delivery that has used its last try this way (its sender died on it every time: a poison
    row) is failed instead of being retried forever. Clearing the token disowns the dead
    sender, so an outcome it might still write (a frozen, not dead, process) matches nothing.
    """
    expired = (Delivery.status == DeliveryStatus.SENDING, Delivery.lease_expires_at < now)
    max_attempts = delivery_policy(current_app.config).max_attempts
    poisoned = db.session.execute(
        update(Delivery)
        .where(*expired, Delivery.attempts >= max_attempts)
        .values(_closed(DeliveryStatus.FAILED, GAVE_UP_ON_CRASHES, now))
        .returning(Delivery.digest_id)
        .execution_options(synchronize_session=False)
    ).all()
    for digest_id, count in Counter(row[0] for row in poisoned).items():
        db.session.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(failed=Digest.failed + count)
            .execution_options(synchronize_session=False)
        )
    count = db.session.execute(
        update(Delivery)
        .where(*expired)
        .values(status=DeliveryStatus.QUEUED, next_attempt_at=now, **UNCLAIMED)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return count + len(poisoned)


def renew_leases(tokens: list[str], lease: timedelta, now: datetime | None = None) -> int:
    """Keep the rows of live claims ours while they are being sent (the caller commits)."""
    if not tokens:
        return 0
    now = now or utcnow()
    return db.session.execute(
        update(Delivery)
        .where(Delivery.claim_token.in_(tokens), Delivery.status == DeliveryStatus.SENDING)
        .values(lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    ).rowcount


def _claim_from(digest_id: int, limit: int, now: datetime, lease: timedelta, token: str) -> list:
    due = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryStatus.QUEUED,
            Delivery.digest_id == digest_id,
            Delivery.next_attempt_at <= now,
        )
        # No ORDER BY: any due rows will do, and the (status, digest_id) index yields them
        # without sorting the whole queue on every claim.
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            status=DeliveryStatus.SENDING,
            updated_at=now,
            **claim_values(Delivery, token, now + lease),
        )
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    ).all()


def claim_deliveries(
    limit: int, *, lease: timedelta, now: datetime | None = None, token: str | None = None
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries of one sending digest, and commit the claim.

    Subscribers no longer confirmed (they left, or bounced, since the fan-out) are dropped
    here: their deliveries are recorded ``cancelled`` and nothing is sent to them.
    """
    now = now or utcnow()
    token = token or new_claim_token()
    for digest_id in active_digest_ids():
        rows = _claim_from(digest_id, limit, now, lease, token)
        if not rows:
            db.session.commit()
            finish_if_complete(digest_id, now)
            continue
        by_subscriber = {row[1]: row for row in rows}
        subscribers = db.session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.email_key,
                Subscriber.status,
            ).where(Subscriber.id.in_(list(by_subscriber)))
        ).all()
        claimed: list[ClaimedDelivery] = []
        dropped: list[int] = []
        for subscriber_id, address, name, email_key, status in subscribers:
            delivery_id, _, attempts = by_subscriber.pop(subscriber_id)
            if status != SubscriberStatus.CONFIRMED:
                dropped.append(delivery_id)
                continue
            claimed.append(
                ClaimedDelivery(
                    delivery_id,
                    digest_id,
                    subscriber_id,
                    attempts,
                    address,
                    name,
                    email_key,
                    token,
                )
            )
        dropped += [row[0] for row in by_subscriber.values()]  # subscriber deleted
        if dropped:
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(dropped))
                .values(_closed(DeliveryStatus.CANCELLED, "subscriber no longer confirmed", now))
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        if claimed:
            claimed.sort(key=lambda delivery: delivery.id)
            return claimed
        finish_if_complete(digest_id, now)
    return []


def finish_if_complete(digest_id: int, now: datetime | None = None) -> bool:
    """Mark a sending digest ``sent`` once none of its deliveries is queued or in flight."""
    now = now or utcnow()
    pending = db.session.scalar(
        select(Delivery.id)
        .where(
            Delivery.digest_id == digest_id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
        )
        .limit(1)
    )
    if pending is not None:
        return False
    counts = dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.digest_id == digest_id)
            .group_by(Delivery.status)
        ).all()
    )
    sent = counts.get(DeliveryStatus.SENT, 0)
    failed = counts.get(DeliveryStatus.FAILED, 0)
    everything_failed = failed > 0 and sent == 0
    result = db.session.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING)
        .values(
            status=DigestStatus.FAILED if everything_failed else DigestStatus.SENT,
            failure_reason="every delivery failed" if everything_failed else None,
            sent=sent,
            failed=failed,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount and not everything_failed:
        recipients = db.session.scalar(select(Digest.recipients).where(Digest.id == digest_id))
        emit_event("digest.sent", digest_event_data(digest_id, recipients or 0, sent, failed))
    db.session.commit()
    if result.rowcount:
        log.info(
            "digest %s finished: %s sent, %s failed",
            digest_id,
            sent,
            failed,
            extra={"digest_id": digest_id},
        )
    return bool(result.rowcount)


def digest_event_data(digest_id: int, recipients: int, sent: int, failed: int) -> dict:
    """What the ``digest.sent`` webhook says (issue 14)."""
    return {"id": digest_id, "recipients": recipients, "sent": sent, "failed": failed}


def pending_delivery_count(now: datetime | None = None) -> int:
    """Deliveries of active digests that are due now or in flight."""
    now = now or utcnow()
    return (
        db.session.scalar(
            select(func.count(Delivery.id))
            .join(Digest, Digest.id == Delivery.digest_id)
            .where(
                Digest.status == DigestStatus.SENDING,
                Digest.paused.is_(False),
                ((Delivery.status == DeliveryStatus.QUEUED) & (Delivery.next_attempt_at <= now))
                | (Delivery.status == DeliveryStatus.SENDING),
            )
        )
        or 0
    )
