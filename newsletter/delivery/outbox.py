"""The outbox: rendered messages written in the caller's transaction, delivered by workers.

A message is claimed (status ``sending`` with a lease), handed to the transport, and marked
``sent`` only after the server accepted it. Temporary failures go back to ``queued`` with an
exponential backoff; permanent ones, or too many tries, are recorded as ``failed``. A worker
that dies mid-send leaves a lease that lapses, so the message is picked up again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from ..config import CLAIM_LEASE, OUTBOX_BACKOFF_BASE, OUTBOX_BACKOFF_CAP, OUTBOX_MAX_ATTEMPTS
from ..domain.addresses import address_key
from ..extensions import db
from ..mail.message import build_message_bytes, message_bytes
from ..mail.render import render_email
from ..mail.transport import DeliveryError, Transport
from ..models import OutboxMessage, OutboxStatus, utcnow
from .streams import (
    STREAM_TRANSACTIONAL,
    StreamTransports,
    feedback_id,
    stream_for_kind,
    stream_mail_from,
)

log = logging.getLogger(__name__)


def queue_message(kind: str, recipient: str, message: EmailMessage | bytes) -> int:
    """Add a message to the outbox in the current transaction (the caller commits); returns
    its id. A plain insert, not an ORM object: this is on every subscribe request's path."""
    data = message if isinstance(message, bytes) else message_bytes(message)
    now = utcnow()
    result = db.session.execute(
        _QUEUE_MESSAGE,
        {
            "kind": kind,
            "recipient": recipient,
            "recipient_key": address_key(recipient),
            "message": data,
            "now": now,
        },
    )
    return result.inserted_primary_key[0]


_QUEUE_MESSAGE = insert(OutboxMessage.__table__).values(
    kind=bindparam("kind"),
    recipient=bindparam("recipient"),
    recipient_key=bindparam("recipient_key"),
    message=bindparam("message"),
    status=OutboxStatus.QUEUED.value,
    attempts=0,
    next_attempt_at=bindparam("now"),
    created_at=bindparam("now"),
)


def queue_email(
    kind: str,
    /,
    *,
    to: str,
    to_name: str | None = None,
    template: str,
    language: str,
    headers: dict[str, str] | None = None,
    **context: object,
) -> int:
    """Render ``templates/emails/<template>.{txt,html}`` and queue it for the address ``to``."""
    rendered = render_email(template, language, **context)
    stream = stream_for_kind(kind)
    all_headers = {
        "Auto-Submitted": "auto-generated",
        "Feedback-ID": feedback_id(kind, stream),
        **(headers or {}),
    }
    # Serialised directly: the email package's builder was most of a subscribe request's cost.
    data = build_message_bytes(
        rendered,
        mail_from=stream_mail_from(stream),
        to=to,
        to_name=to_name,
        extra_headers=all_headers,
    )
    return queue_message(kind, to, data)


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    recipient: str
    data: bytes
    kind: str = ""

    @property
    def stream(self) -> str:
        return stream_for_kind(self.kind) if self.kind else STREAM_TRANSACTIONAL


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after the first, second, third failed try, capped."""
    delay = OUTBOX_BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(delay, OUTBOX_BACKOFF_CAP)


def claim_outbox_batch(limit: int, now: datetime | None = None) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages for this worker, and commit the claim.

    ``FOR UPDATE SKIP LOCKED`` lets several workers claim side by side on PostgreSQL; SQLite
    serialises writers, so the same statement is safe there too.
    """
    now = now or utcnow()
    due = (
        select(OutboxMessage.id)
        .where(
            or_(
                and_(
                    OutboxMessage.status == OutboxStatus.QUEUED,
                    OutboxMessage.next_attempt_at <= now,
                ),
                and_(
                    OutboxMessage.status == OutboxStatus.SENDING,
                    OutboxMessage.lease_expires_at < now,
                ),
            )
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()))
        .values(
            status=OutboxStatus.SENDING,
            lease_expires_at=now + CLAIM_LEASE,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            OutboxMessage.id, OutboxMessage.recipient, OutboxMessage.message, OutboxMessage.kind
        )
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted(
        (
            ClaimedMessage(id=row[0], recipient=row[1], data=bytes(row[2]), kind=row[3])
            for row in rows
        ),
        key=lambda claimed: claimed.id,
    )


def deliver_outbox_batch(transport: Transport | StreamTransports, limit: int = 50) -> int:
    """Claim and send one batch; returns how many messages were claimed. Each message goes
    through its stream's transport, with its stream's return path."""
    claimed = claim_outbox_batch(limit)
    if not claimed:
        return 0
    streams = (
        transport
        if isinstance(transport, StreamTransports)
        else StreamTransports.wrapping(transport)
    )
    for message in claimed:
        stream = message.stream
        try:
            accepted = streams.transport(stream).send(
                streams.sender(stream), message.recipient, message.data
            )
        except DeliveryError as exc:
            _record_failure(message.id, exc)
            if exc.temporary and exc.code is None:
                # The server is out of reach: the rest of the batch would fail the same way.
                _release_unsent(claimed, after=message.id)
                db.session.commit()
                return len(claimed)
        else:
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id)
                .values(
                    status=OutboxStatus.SENT,
                    sent_at=utcnow(),
                    lease_expires_at=None,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )
            log.debug("outbox %s accepted: %s", message.id, accepted.response)
        # Record each outcome at once: a crash after this point never re-sends this one.
        db.session.commit()
    return len(claimed)


def _record_failure(message_id: int, error: DeliveryError) -> None:
    row = db.session.get(OutboxMessage, message_id)
    if row is None:
        return
    row.last_error = str(error)[:2000]
    row.lease_expires_at = None
    if error.temporary and row.attempts < OUTBOX_MAX_ATTEMPTS:
        row.status = OutboxStatus.QUEUED
        row.next_attempt_at = utcnow() + backoff(row.attempts)
        log.warning("outbox %s deferred (try %s): %s", message_id, row.attempts, error)
    else:
        row.status = OutboxStatus.FAILED
        log.error("outbox %s failed: %s", message_id, error)


def _release_unsent(claimed: list[ClaimedMessage], *, after: int) -> None:
    """Put back the claimed messages not tried yet, without counting a try against them."""
    ids = [message.id for message in claimed if message.id > after]
    if ids:
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                status=OutboxStatus.QUEUED,
                lease_expires_at=None,
                attempts=OutboxMessage.attempts - 1,
            )
            .execution_options(synchronize_session=False)
        )


def pending_outbox_count(now: datetime | None = None) -> int:
    """Messages that are due now or being sent (what ``--until-idle`` waits for)."""
    now = now or utcnow()
    return (
        db.session.scalar(
            select(func.count(OutboxMessage.id)).where(
                or_(
                    and_(
                        OutboxMessage.status == OutboxStatus.QUEUED,
                        OutboxMessage.next_attempt_at <= now,
                    ),
                    OutboxMessage.status == OutboxStatus.SENDING,
                )
            )
        )
        or 0
    )
