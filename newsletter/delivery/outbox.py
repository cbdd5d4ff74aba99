"""The outbox: rendered messages written in the caller's transaction, delivered by workers.

A message is claimed (status ``sending`` with a lease), handed to the transport, and marked
``sent`` only after the server accepted it. Temporary failures go back to ``queued`` with an
exponential backoff; permanent ones, or too many tries, are recorded as ``failed``. A worker
that dies mid-send leaves a lease that lapses, so the message is picked up again. The numbers
are ``retry_policy.OUTBOX_POLICY``; digest deliveries follow the same policy.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from ..config import STREAM_NEWSLETTER, SUPPRESSED_FOR_ALL_MAIL
from ..domain.addresses import address_key
from ..domain.suppressions import SuppressionKeys, suppression_reasons
from ..extensions import db
from ..mail.message import build_message_bytes, message_bytes
from ..mail.render import render_email
from ..mail.transport import DeliveryError, Transport
from ..models import OutboxMessage, OutboxStatus, utcnow
from ..observability import instruments
from .retry_policy import (
    GAVE_UP_ON_CRASHES,
    OUTBOX_POLICY,
    UNCLAIMED,
    claim_values,
    costs_no_try,
    untried_values,
)
from .return_paths import ReturnPaths
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
    token: str = ""

    @property
    def stream(self) -> str:
        return stream_for_kind(self.kind) if self.kind else STREAM_TRANSACTIONAL


class RelayUnreachable(Exception):
    """The relay could not be reached: nothing was counted; the caller should back off."""


def _fail_poisoned(now: datetime) -> int:
    """Messages whose sender died on them at every try: failed, not retried forever."""
    return db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.SENDING,
            OutboxMessage.lease_expires_at < now,
            OutboxMessage.attempts >= OUTBOX_POLICY.max_attempts,
        )
        .values(status=OutboxStatus.FAILED, last_error=GAVE_UP_ON_CRASHES, **UNCLAIMED)
        .execution_options(synchronize_session=False)
    ).rowcount


def claim_outbox_batch(
    limit: int, now: datetime | None = None, *, lease: timedelta = OUTBOX_POLICY.lease
) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages for this worker, and commit the claim.

    ``FOR UPDATE SKIP LOCKED`` lets several workers claim side by side on PostgreSQL; SQLite
    serialises writers, so the same statement is safe there too. The claim writes a fresh
    token into the rows: only its holder may record their outcome.
    """
    now = now or utcnow()
    token = uuid.uuid4().hex
    poisoned = _fail_poisoned(now)
    if poisoned:
        log.error("%s outbox messages failed: their sender died on them at every try", poisoned)
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
        .values(status=OutboxStatus.SENDING, **claim_values(OutboxMessage, token, now + lease))
        .returning(
            OutboxMessage.id, OutboxMessage.recipient, OutboxMessage.message, OutboxMessage.kind
        )
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted(
        (
            ClaimedMessage(
                id=row[0], recipient=row[1], data=bytes(row[2]), kind=row[3], token=token
            )
            for row in rows
        ),
        key=lambda claimed: claimed.id,
    )


def _ours(message: ClaimedMessage):
    return (
        OutboxMessage.id == message.id,
        OutboxMessage.claim_token == message.token,
        OutboxMessage.status == OutboxStatus.SENDING,
    )


def _write_if_ours(message: ClaimedMessage, **values: object) -> None:
    """Update the message's row while it is still under our claim (else whoever holds it now
    records it, and this matches nothing)."""
    db.session.execute(
        update(OutboxMessage)
        .where(*_ours(message))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def deliver_outbox_batch(
    transport: Transport | StreamTransports, limit: int = 50, *, limiter=None
) -> int:
    """Claim and send one batch; returns how many messages were claimed. Each message goes
    through its stream's transport, with its stream's return path.

    Raises ``RelayUnreachable`` (after putting the batch back, no try counted) when the relay
    cannot be reached, so the caller backs off instead of spinning through the queue.
    """
    claimed = claim_outbox_batch(limit)
    if not claimed:
        return 0
    return_paths = ReturnPaths(current_app.config)
    blocked = _suppressed(claimed)
    streams = (
        transport
        if isinstance(transport, StreamTransports)
        else StreamTransports.wrapping(transport)
    )
    for index, message in enumerate(claimed):
        stream = message.stream
        if message.id in blocked:
            _record_suppressed(message, blocked[message.id])
            db.session.commit()
            continue
        if limiter is not None:
            limiter.wait(message.recipient)
        try:
            sender = (
                return_paths.outbox_sender(message.id)
                if return_paths.personal
                else streams.sender(stream)
            )
            with instruments.smtp_timer(stream):
                accepted = streams.transport(stream).send(sender, message.recipient, message.data)
        except DeliveryError as exc:
            if costs_no_try(exc):
                _release_unsent(claimed[index:], str(exc))
                db.session.commit()
                raise RelayUnreachable(str(exc)) from exc
            _record_failure(message, exc)
        else:
            _write_if_ours(
                message,
                status=OutboxStatus.SENT,
                sent_at=utcnow(),
                lease_expires_at=None,
                last_error=None,
            )
            log.debug("outbox %s accepted: %s", message.id, accepted.response)
            instruments.record_sends(stream, sent=1)
        # Record each outcome at once (a crash after this never re-sends this one), and keep
        # the rest of the claim ours while a slow relay works through it.
        db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.claim_token == message.token,
                OutboxMessage.status == OutboxStatus.SENDING,
            )
            .values(lease_expires_at=OUTBOX_POLICY.lease_until(utcnow()))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    return len(claimed)


def _suppressed(claimed: list[ClaimedMessage]) -> dict[int, str]:
    """Claimed messages that must not go out, with the suppression reason: every message to a
    hard-bounced address; only newsletter-stream mail to one suppressed for another reason
    (a complaint is about bulk mail; an account's reset code still reaches its owner)."""
    reasons = suppression_reasons(
        SuppressionKeys.from_config(current_app.config),
        {address_key(message.recipient) for message in claimed},
    )
    blocked: dict[int, str] = {}
    for message in claimed:
        reason = reasons.get(address_key(message.recipient))
        if reason is not None and (
            reason in SUPPRESSED_FOR_ALL_MAIL or message.stream == STREAM_NEWSLETTER
        ):
            blocked[message.id] = reason
    return blocked


def _record_suppressed(message: ClaimedMessage, reason: str) -> None:
    """Failed without an SMTP attempt: the address is on the suppression list."""
    _write_if_ours(
        message,
        status=OutboxStatus.FAILED,
        lease_expires_at=None,
        last_error=f"suppressed ({reason})",
    )
    instruments.record_sends(message.stream, failed=1)
    log.info("outbox %s not sent: address suppressed (%s)", message.id, reason)


def _record_failure(message: ClaimedMessage, error: DeliveryError) -> None:
    row = db.session.execute(
        select(OutboxMessage).where(*_ours(message)).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        return  # no longer ours: whoever holds it now records it
    row.last_error = str(error)[:2000]
    row.lease_expires_at = None
    if not OUTBOX_POLICY.gives_up(row.attempts, error):
        row.status = OutboxStatus.QUEUED
        row.next_attempt_at = OUTBOX_POLICY.next_attempt_at(row.attempts, utcnow())
        instruments.record_sends(message.stream, deferred=1)
        log.warning("outbox %s deferred (try %s): %s", message.id, row.attempts, error)
    else:
        row.status = OutboxStatus.FAILED
        instruments.record_sends(message.stream, failed=1)
        log.error("outbox %s failed: %s", message.id, error)


def _release_unsent(unsent: list[ClaimedMessage], error: str) -> None:
    """Put back claimed messages not sent, without counting a try against them; they wait a
    short pause so no worker hammers a relay that is down."""
    put_back = untried_values(OutboxMessage, OUTBOX_POLICY, utcnow())
    for message in unsent:
        _write_if_ours(message, status=OutboxStatus.QUEUED, last_error=error[:2000], **put_back)


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
