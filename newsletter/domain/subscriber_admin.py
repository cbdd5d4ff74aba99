"""Staff changes to one subscriber (issue 14): language, status, and erasure (GDPR art. 17).

Erasure deletes the row (its deliveries go with it) and the mail still stored for the address
in the outbox. What stays is a keyed hash of the address in the audit entry, so the address
can be recognised later without being kept; the suppression list (issue 12b) is not on main
yet, so that hash is the only trace kept.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import delete

from ..config import LANGUAGES
from ..extensions import db
from ..models import OutboxMessage, Subscriber, SubscriberStatus, utcnow
from .staff import StaffError

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
        changes["status"] = [subscriber.status, status]
        subscriber.status = status
        now = utcnow()
        if status == SubscriberStatus.UNSUBSCRIBED:
            subscriber.unsubscribed_at = now
            subscriber.unsubscribe_method = "staff"
        elif status == SubscriberStatus.BOUNCED:
            subscriber.bounced_at = now
    return changes


def address_hash(email_key: str, key: str) -> str:
    """A keyed hash of an address: recognisable later, not readable."""
    return hmac.new(key.encode(), email_key.encode(), hashlib.sha256).hexdigest()


def erase_subscriber(subscriber: Subscriber, key: str) -> dict[str, object]:
    """Delete the subscriber and their stored mail; returns what the audit entry keeps."""
    left = subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)
    mail = db.session.execute(
        delete(OutboxMessage).where(OutboxMessage.recipient_key == subscriber.email_key)
    ).rowcount
    details = {
        "address_hash": address_hash(subscriber.email_key, key),
        "never_mail_again": left,
        "stored_mail_deleted": mail,
    }
    db.session.delete(subscriber)
    return details
