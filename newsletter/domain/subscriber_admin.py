"""Staff changes to one subscriber (issue 14): language, status, and erasure (GDPR art. 17).

Erasure deletes the row (its deliveries go with it) and the mail still stored for the address
in the outbox; it takes the address out of stored webhook payloads (``webhooks.
forget_subscriber``) and drops the stored inbound mail from or about them (bounces,
complaints, mailto requests, replies kept for staff), keeping those log rows without it.
What stays is a keyed hash of the address in the audit entry and, when the
subscriber had asked never to be mailed again (unsubscribed, complaint included) or could not
be (bounced), a keyed hash on the suppression list (reason ``erased``), so a later import or
subscribe does not bring them back. Erasing someone pending or confirmed leaves no suppression:
they never asked to stop, and erasure is not a ban (they may subscribe again themselves).
"""

from __future__ import annotations

import re

from sqlalchemy import delete, func, or_, select

from ..config import LANGUAGES
from ..extensions import db
from ..models import InboundMessage, OutboxMessage, Subscriber, SubscriberStatus
from .audit import address_hash
from .staff import StaffError
from .subscriptions import mark_bounced, unsubscribe
from .suppressions import SuppressionKeys, suppress
from .webhooks import forget_subscriber

# Staff may mark someone as having left or bounced, and bring back to "confirmed" only someone
# who once confirmed (staff cannot give consent on a reader's behalf).
STAFF_STATUSES = (
    SubscriberStatus.CONFIRMED,
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
)


def change_subscriber(
    subscriber: Subscriber, *, language: str | None, status: str | None
) -> dict[str, list[str]]:
    """Apply the changes; returns ``{field: [old, new]}``. Raises ``StaffError``."""
    changes: dict[str, list[str]] = {}
    if language and language != subscriber.language:
        if language not in LANGUAGES:
            raise StaffError("language")
        changes["language"] = [subscriber.language, language]
        subscriber.language = language
    if status and status != subscriber.status:
        if status not in STAFF_STATUSES:
            raise StaffError("status")
        if status == SubscriberStatus.CONFIRMED and subscriber.confirmed_at is None:
            raise StaffError("never_confirmed")
        old = subscriber.status
        # Leaving and bouncing go through the subscriptions domain, as a reader's link or a
        # DSN do: the same fields, the same counters, the same webhook event.
        if status == SubscriberStatus.UNSUBSCRIBED:
            unsubscribe(subscriber, method="staff")
        elif status == SubscriberStatus.BOUNCED:
            if not mark_bounced(subscriber, source="staff"):
                raise StaffError("already_inactive")
        else:
            subscriber.status = status
        changes["status"] = [old, status]
    return changes


# Statuses of someone who asked never to be mailed again, or cannot be: erased, they stay
# suppressed.
NEVER_MAIL_AGAIN = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def erase_subscriber(subscriber: Subscriber, key: str, keys: SuppressionKeys) -> dict[str, object]:
    """Delete the subscriber and their stored mail, suppressing the address when they had
    left or bounced; returns what the audit entry keeps. The caller commits."""
    left = subscriber.status in NEVER_MAIL_AGAIN
    suppressed = False
    if left:
        # An address already on the list keeps its first reason (a hard bounce still blocks
        # account mail, see delivery.outbox); either way it stays refused.
        suppress(keys, subscriber.email_key, "erased", f"erased while {subscriber.status}")
        suppressed = True
    mail = db.session.execute(
        delete(OutboxMessage).where(OutboxMessage.recipient_key == subscriber.email_key)
    ).rowcount
    details = {
        "address_hash": address_hash(subscriber.email_key, key),
        "never_mail_again": left,
        "suppressed": suppressed,
        "stored_mail_deleted": mail,
        "webhook_payloads_scrubbed": forget_subscriber(subscriber.id, subscriber.email),
        "inbound_mail_scrubbed": forget_inbound_mail(subscriber),
    }
    db.session.delete(subscriber)
    return details


ERASED = "[erased]"
INBOUND_SCAN_CHUNK = 500  # stored raw mail read at a time while looking for the address


def forget_inbound_mail(subscriber: Subscriber) -> int:
    """Drop the stored bytes of every inbound message linked to the subscriber, sent from
    their address or naming it, and blank the address in what the row says; returns how many
    rows changed. The rows stay (feedback counts per digest read them), anonymous."""
    pattern = re.compile(re.escape(subscriber.email_key), re.IGNORECASE)
    needle = subscriber.email_key.encode()
    linked = set(
        db.session.scalars(
            select(InboundMessage.id).where(
                or_(
                    InboundMessage.subscriber_id == subscriber.id,
                    func.lower(InboundMessage.envelope_from) == subscriber.email_key,
                    InboundMessage.recipients.contains(subscriber.email_key, autoescape=True),
                )
            )
        )
    )
    # Raw mail is kept only when not understood (or for provider webhooks), capped: scanning it
    # in Python finds the address in any letter case on every database.
    last_id = 0
    while True:
        chunk = db.session.execute(
            select(InboundMessage.id, InboundMessage.raw)
            .where(InboundMessage.raw.is_not(None), InboundMessage.id > last_id)
            .order_by(InboundMessage.id)
            .limit(INBOUND_SCAN_CHUNK)
        ).all()
        if not chunk:
            break
        last_id = chunk[-1].id
        linked.update(row.id for row in chunk if needle in bytes(row.raw).lower())
    for message_id in linked:
        row = db.session.get(InboundMessage, message_id)
        row.raw = None
        for column in ("envelope_from", "recipients", "outcome", "error"):
            value = getattr(row, column)
            if value:
                setattr(row, column, pattern.sub(ERASED, value))
    return len(linked)
