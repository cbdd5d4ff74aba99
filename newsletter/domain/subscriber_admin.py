"""Staff changes to one subscriber (issue 14): language, status, and erasure (GDPR art. 17).

Erasure deletes the row (its deliveries go with it) and the mail still stored for the address
in the outbox. What stays is a keyed hash of the address in the audit entry and, when the
subscriber had asked never to be mailed again (unsubscribed, complaint included) or could not
be (bounced), a keyed hash on the suppression list (reason ``erased``), so a later import or
subscribe does not bring them back. Erasing someone pending or confirmed leaves no suppression:
they never asked to stop, and erasure is not a ban (they may subscribe again themselves).
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import delete

from ..config import LANGUAGES
from ..extensions import db
from ..models import OutboxMessage, Subscriber, SubscriberStatus, utcnow
from .staff import StaffError
from .suppressions import SuppressionKeys, suppress

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


# Statuses of someone who asked never to be mailed again, or cannot be: erased, they stay
# suppressed.
NEVER_MAIL_AGAIN = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def erase_subscriber(
    subscriber: Subscriber, key: str, keys: SuppressionKeys
) -> dict[str, object]:
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
    }
    db.session.delete(subscriber)
    return details
