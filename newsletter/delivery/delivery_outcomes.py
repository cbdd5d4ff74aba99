"""Recording the outcomes of claimed deliveries, a batch at a time: sent, refused (retried or
failed by the retry policy, 5xx answers counted as hard bounces) or untried (the relay was out
of reach: back to the queue, no try counted). Only the claim's holder writes: every statement
matches the row's claim token, so an outcome a lease sweep has disowned changes nothing."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import Connection, bindparam, select, tuple_, update

from ..config import HARD_BOUNCES_BEFORE_BOUNCED, STREAM_NEWSLETTER
from ..domain.webhooks import emit_event
from ..extensions import db
from ..mail.transport import DeliveryError
from ..models import Delivery, Digest, Subscriber, utcnow
from ..models.statuses import DeliveryStatus, DigestStatus, SubscriberStatus
from ..observability import instruments
from .retry_policy import UNCLAIMED, delivery_policy, untried_values

if TYPE_CHECKING:  # only an annotation here; delivery_queue is the claiming side
    from .delivery_queue import ClaimedDelivery

log = logging.getLogger(__name__)

# The recorder runs these for every message sent: built once as Core statements (their
# compiled form is cached), not an ORM bulk UPDATE composed per call, which cost more CPU
# than the SMTP conversation itself (bench/README.md, "The recorder's statements").
_deliveries = Delivery.__table__
# A row is ours while it still carries our claim token: once a lease sweep has put it back
# (and perhaps another sender took it), our outcome is not to be written over theirs.
_STILL_OURS = (
    _deliveries.c.id == bindparam("b_id"),
    _deliveries.c.claim_token == bindparam("b_token"),
    _deliveries.c.status == DeliveryStatus.SENDING,
)
_MARK_SENT = (
    _deliveries.update()
    .where(*_STILL_OURS)
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


@dataclass
class BatchOutcomes:
    sent: list[tuple[ClaimedDelivery, str]] = field(default_factory=list)
    failed: list[tuple[ClaimedDelivery, DeliveryError]] = field(default_factory=list)
    # Never tried because the server was out of reach: back to the queue, try not counted.
    untried: list[ClaimedDelivery] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.untried)


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
    sent_by_digest: dict[int, int] = defaultdict(int)
    failed_by_digest: dict[int, int] = defaultdict(int)

    for digest_id, count in record_sent(db.session.connection(), outcomes.sent, now).items():
        sent_by_digest[digest_id] += count

    if outcomes.failed:
        policy = delivery_policy(current_app.config)
        rows = []
        bounced: list[int] = []
        for delivery, error in outcomes.failed:
            final = policy.gives_up(delivery.attempts, error)
            rows.append(
                {
                    "b_id": delivery.id,
                    "b_token": delivery.token,
                    "b_status": DeliveryStatus.FAILED if final else DeliveryStatus.QUEUED,
                    "b_next": None if final else policy.next_attempt_at(delivery.attempts, now),
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
            _deliveries.update()
            .where(*_STILL_OURS)
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_next"),
                smtp_code=bindparam("b_code"),
                smtp_response=bindparam("b_response"),
                updated_at=now,
                **UNCLAIMED,
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
                updated_at=now,
                **untried_values(Delivery, delivery_policy(current_app.config), now),
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
