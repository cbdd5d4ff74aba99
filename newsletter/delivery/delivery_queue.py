"""The delivery queue: claim deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, with a lease
for crash recovery), record their outcomes, put back what a dead worker held, and finish a
digest once nothing is left. A delivery is marked sent only after the server accepted it."""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import (
    Connection,
    bindparam,
    func,
    select,
    tuple_,
    update,
)

from ..config import (
    DELIVERY_MAX_ATTEMPTS,
    DELIVERY_OUTAGE_PAUSE_SECONDS,
    HARD_BOUNCES_BEFORE_BOUNCED,
    STREAM_NEWSLETTER,
)
from ..domain.webhooks import emit_event
from ..extensions import db
from ..mail.transport import DeliveryError
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from ..observability import instruments

RETRY_CAP = timedelta(hours=1)

log = logging.getLogger(__name__)

# The recorder runs these for every message sent: built once as Core statements (their
# compiled form is cached), not an ORM bulk UPDATE composed per call, which cost more CPU
# than the SMTP conversation itself (bench/README.md, "The recorder's statements").
_deliveries = Delivery.__table__
_MARK_SENT = (
    _deliveries.update()
    .where(
        _deliveries.c.id == bindparam("b_id"),
        _deliveries.c.claim_token == bindparam("b_token"),
        _deliveries.c.status == DeliveryStatus.SENDING,
    )
    .values(
        status=DeliveryStatus.SENT,
        smtp_code=250,
        smtp_response=bindparam("b_response"),
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)
_subscribers = Subscriber.__table__
_CLEAR_HARD_BOUNCES = (
    _subscribers.update()
    .where(
        _subscribers.c.id == bindparam("b_subscriber"),
        _subscribers.c.hard_bounces > 0,
    )
    .values(hard_bounces=0)
)


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


def release_expired_leases(now: datetime) -> int:
    """Deliveries claimed by a worker that died: back to the queue (the try stays counted).

    A delivery that has used its last try this way (its sender died on it every time: a poison
    row) is failed instead of being retried forever. Clearing the token disowns the dead
    sender, so an outcome it might still write (a frozen, not dead, process) matches nothing.
    """
    expired = (Delivery.status == DeliveryStatus.SENDING, Delivery.lease_expires_at < now)
    poisoned = db.session.execute(
        update(Delivery)
        .where(*expired, Delivery.attempts >= DELIVERY_MAX_ATTEMPTS)
        .values(
            status=DeliveryStatus.FAILED,
            smtp_response="gave up: the sender stopped while sending it, every try",
            lease_expires_at=None,
            claim_token=None,
            updated_at=now,
        )
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
        .values(
            status=DeliveryStatus.QUEUED,
            next_attempt_at=now,
            lease_expires_at=None,
            claim_token=None,
        )
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
            lease_expires_at=now + lease,
            claim_token=token,
            attempts=Delivery.attempts + 1,
            updated_at=now,
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
                .values(
                    status=DeliveryStatus.CANCELLED,
                    smtp_response="subscriber no longer confirmed",
                    lease_expires_at=None,
                    claim_token=None,
                    updated_at=now,
                )
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


# ---------------------------------------------------------------------------------------------
# Recording outcomes, a batch at a time


@dataclass
class BatchOutcomes:
    sent: list[tuple[ClaimedDelivery, str]] = field(default_factory=list)
    failed: list[tuple[ClaimedDelivery, DeliveryError]] = field(default_factory=list)
    # Never tried because the server was out of reach: back to the queue, try not counted.
    untried: list[ClaimedDelivery] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.untried)


def retry_delay(attempts: int, base_seconds: int) -> timedelta:
    """base, 2×base, 4×base ... after the first, second, third failed try; capped at an hour."""
    return min(timedelta(seconds=base_seconds) * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def record_sent(
    connection: Connection, sent: list[tuple[ClaimedDelivery, str]], now: datetime
) -> dict[int, int]:
    """Mark accepted deliveries sent, on ``connection`` in its transaction (the caller
    commits); returns how many rows each digest had still ours to mark."""
    rows_by_digest: dict[int, list[dict]] = defaultdict(list)
    for delivery, response in sent:
        rows_by_digest[delivery.digest_id].append(
            {
                "b_id": delivery.id,
                "b_token": delivery.token,
                "b_response": response[:500],
                "b_now": now,
            }
        )
    marked = {
        digest_id: connection.execute(_MARK_SENT, rows).rowcount
        for digest_id, rows in rows_by_digest.items()
    }
    if sent:
        # Hard bounces count "in a row": a delivered message clears them.
        connection.execute(
            _CLEAR_HARD_BOUNCES, [{"b_subscriber": d.subscriber_id} for d, _ in sent]
        )
    return marked


def record_outcomes(
    outcomes: BatchOutcomes,
    now: datetime | None = None,
    *,
    counters: dict[int, list[int]] | None = None,
) -> tuple[int, int]:
    """Write a batch's results in a few statements and commit; returns (sent, failed).

    With ``counters``, the digests' sent/failed counters are added there (for the caller to
    write with ``add_digest_counts`` now and then) instead of updating the digest row each
    time: one hot row written by every sender at every flush would serialise them all.
    """
    now = now or utcnow()
    table = Delivery.__table__
    sent_by_digest: dict[int, int] = defaultdict(int)
    failed_by_digest: dict[int, int] = defaultdict(int)
    # A row is ours while it still carries our claim token: once a lease sweep has put it back
    # (and perhaps another sender took it), our outcome is not to be written over theirs.

    for digest_id, count in record_sent(db.session.connection(), outcomes.sent, now).items():
        sent_by_digest[digest_id] += count

    if outcomes.failed:
        retry_base = current_app.config["DELIVERY_RETRY_SECONDS"]
        rows = []
        bounced: list[int] = []
        for delivery, error in outcomes.failed:
            final = not error.temporary or delivery.attempts >= DELIVERY_MAX_ATTEMPTS
            rows.append(
                {
                    "b_id": delivery.id,
                    "b_token": delivery.token,
                    "b_status": DeliveryStatus.FAILED if final else DeliveryStatus.QUEUED,
                    "b_next": None if final else now + retry_delay(delivery.attempts, retry_base),
                    "b_code": error.code,
                    "b_response": str(error)[:500],
                }
            )
            if final:
                failed_by_digest[delivery.digest_id] += 1
            if not error.temporary and error.code is not None and 500 <= error.code < 600:
                bounced.append(delivery.subscriber_id)
            log.warning(
                "delivery %s to %s %s: %s",
                delivery.id,
                delivery.email,
                "failed" if final else "deferred",
                error,
                extra={"digest_id": delivery.digest_id, "delivery_id": delivery.id},
            )
        db.session.connection().execute(
            table.update()
            .where(
                table.c.id == bindparam("b_id"),
                table.c.claim_token == bindparam("b_token"),
                table.c.status == DeliveryStatus.SENDING,
            )
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_next"),
                smtp_code=bindparam("b_code"),
                smtp_response=bindparam("b_response"),
                lease_expires_at=None,
                claim_token=None,
                updated_at=now,
            ),
            rows,
        )
        if bounced:
            record_hard_bounces(bounced, now)

    if outcomes.untried:
        db.session.execute(
            update(Delivery)
            .where(
                tuple_(Delivery.id, Delivery.claim_token).in_(
                    [(d.id, d.token) for d in outcomes.untried]
                ),
                Delivery.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.QUEUED,
                attempts=Delivery.attempts - 1,
                next_attempt_at=now + timedelta(seconds=DELIVERY_OUTAGE_PAUSE_SECONDS),
                lease_expires_at=None,
                claim_token=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    if counters is None:
        add_digest_counts(
            {
                d: [sent_by_digest[d], failed_by_digest[d]]
                for d in set(sent_by_digest) | set(failed_by_digest)
            }
        )
    else:
        for digest_id in set(sent_by_digest) | set(failed_by_digest):
            counts = counters.setdefault(digest_id, [0, 0])
            counts[0] += sent_by_digest[digest_id]
            counts[1] += failed_by_digest[digest_id]
    db.session.commit()
    sent, failed = sum(sent_by_digest.values()), sum(failed_by_digest.values())
    instruments.record_sends(
        STREAM_NEWSLETTER, sent=sent, failed=failed, deferred=len(outcomes.failed) - failed
    )
    return sent, failed


def add_digest_counts(counts: dict[int, list[int]]) -> None:
    """Add ``{digest_id: [sent, failed]}`` to the digests' progress counters (caller commits).

    A digest already finished keeps the exact counts ``finish_if_complete`` wrote: counters a
    recorder (of this or another worker) still held when it finished are not added twice."""
    for digest_id, (sent, failed) in counts.items():
        if sent or failed:
            db.session.execute(
                update(Digest)
                .where(
                    Digest.id == digest_id,
                    Digest.status.notin_([DigestStatus.SENT, DigestStatus.FAILED]),
                )
                .values(sent=Digest.sent + sent, failed=Digest.failed + failed)
                .execution_options(synchronize_session=False)
            )


def digest_event_data(digest_id: int, recipients: int, sent: int, failed: int) -> dict:
    """What the ``digest.sent`` webhook says (issue 14)."""
    return {"id": digest_id, "recipients": recipients, "sent": sent, "failed": failed}


def record_hard_bounces(subscriber_ids: list[int], now: datetime) -> None:
    """Count a hard bounce; after ``HARD_BOUNCES_BEFORE_BOUNCED`` the address is bounced."""
    db.session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(subscriber_ids))
        .values(hard_bounces=Subscriber.hard_bounces + 1)
        .execution_options(synchronize_session=False)
    )
    becoming_bounced = db.session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.language).where(
            Subscriber.id.in_(subscriber_ids),
            Subscriber.hard_bounces >= HARD_BOUNCES_BEFORE_BOUNCED,
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
    ).all()
    db.session.execute(
        update(Subscriber)
        .where(
            Subscriber.id.in_(subscriber_ids),
            Subscriber.hard_bounces >= HARD_BOUNCES_BEFORE_BOUNCED,
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
        .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
        .execution_options(synchronize_session=False)
    )
    # A bulk update (this runs per send batch), so not through domain.mark_bounced; the same
    # counter and event, once per subscriber.
    if becoming_bounced:
        instruments.BOUNCES.labels("smtp").inc(len(becoming_bounced))
    for subscriber_id, address, language in becoming_bounced:
        emit_event(
            "subscriber.bounced", {"id": subscriber_id, "email": address, "language": language}
        )


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
