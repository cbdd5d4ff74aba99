"""Newsletter subscriptions: double opt-in, consent record, unsubscribe.

The same outcome is visible to the visitor whatever the address's state (no enumeration);
the caller learns privately whether a confirmation email is due.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite

from ..config import (
    CONFIRM_SUBSCRIPTION,
    CONFIRMATIONS_PER_ADDRESS_PER_DAY,
    LANGUAGES,
    MANAGE_PREFERENCES,
    MAX_NAME_LENGTH,
    MAX_PAGE_URL_LENGTH,
    UNSUBSCRIBE,
    TokenPurpose,
)
from ..extensions import db
from ..models import Subscriber, SubscriberStatus, utcnow
from ..observability import instruments
from .addresses import Address
from .mail_caps import cap_window_start, emails_sent_since, under_daily_cap
from .suppressions import SuppressionKeys, is_suppressed
from .tokens import LinkState, TokenResult, TokenSigner
from .webhooks import emit_event
from .wording import ExplainedError, translatable

CONFIRMATION_KIND = "subscription_confirm"


class InvalidField(ExplainedError):
    """A field that cannot be stored, with the field's name."""

    def __init__(self, field: str, template: str, **params: object) -> None:
        super().__init__(template, **params)
        self.field = field


@dataclass(frozen=True)
class Consent:
    """Where and how a visitor asked to subscribe."""

    ip: str | None = None
    page: str | None = None
    user_agent: str | None = None
    source: str = "form"


@dataclass(frozen=True)
class PendingSubscriber:
    """What the confirmation email needs of a subscriber waiting for the double opt-in."""

    id: int
    email: str
    email_key: str
    name: str | None
    language: str


@dataclass(frozen=True)
class SubscribeOutcome:
    # None when the address is already confirmed: nothing changes and no email goes out.
    subscriber: PendingSubscriber | None
    # True when a confirmation email should go out now (pending and under the daily cap).
    send_confirmation: bool


def clean_text(value: object, field: str, max_length: int) -> str | None:
    """A short single-line text field: stripped, bounded, no control characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(field, translatable("Must be text."))
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length:
        raise InvalidField(field, translatable("At most %(count)d characters."), count=max_length)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidField(
            field, translatable("Line breaks and control characters are not allowed.")
        )
    return value


def clean_language(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value.lower() not in LANGUAGES:
        raise InvalidField(
            "language", translatable("Choose one of: %(choices)s."), choices=", ".join(LANGUAGES)
        )
    return value.lower()


def may_send_confirmation(address: Address) -> bool:
    """Subscription bombing: at most a few confirmation emails per address per day."""
    return under_daily_cap(address.key, CONFIRMATION_KIND, CONFIRMATIONS_PER_ADDRESS_PER_DAY)


@functools.cache
def _subscribe_statement(dialect: str) -> Insert:
    """One round trip for a subscription request: insert the address, or restart the double
    opt-in of an address that is not confirmed, and count its recent confirmation emails.

    A confirmed address matches no row (the update's WHERE fails), so it stays as it is and
    the statement returns nothing. Concurrent requests for a new address cannot collide: the
    database settles them on the unique ``email_key``. Built once per dialect.
    """
    table = Subscriber.__table__
    # Both supported databases spell an upsert the same way; SQLAlchemy has one construct each.
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = insert(table).values(
        email=bindparam("email"),
        email_key=bindparam("email_key"),
        name=bindparam("name"),
        language=bindparam("language"),
        status=SubscriberStatus.PENDING.value,
        created_at=bindparam("now"),
        consent_at=bindparam("now"),
        consent_ip=bindparam("consent_ip"),
        consent_page=bindparam("consent_page"),
        consent_user_agent=bindparam("consent_user_agent"),
        consent_source=bindparam("consent_source"),
        hard_bounces=0,
    )
    new = statement.excluded
    recent_confirmations = emails_sent_since(
        bindparam("email_key"), CONFIRMATION_KIND, bindparam("since")
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.email_key],
        set_={
            # Pending, unsubscribed or bounced: a fresh request restarts the double opt-in.
            "status": SubscriberStatus.PENDING.value,
            "confirmed_at": None,
            "language": new.language,
            "name": func.coalesce(new.name, table.c.name),
            "consent_at": new.consent_at,
            "consent_ip": new.consent_ip,
            "consent_page": new.consent_page,
            "consent_user_agent": new.consent_user_agent,
            "consent_source": new.consent_source,
        },
        where=table.c.status != SubscriberStatus.CONFIRMED.value,
    ).returning(
        table.c.id,
        table.c.email,
        table.c.email_key,
        table.c.name,
        table.c.language,
        recent_confirmations.label("recent_confirmations"),
    )


def subscribe(
    address: Address,
    *,
    language: str,
    name: str | None,
    consent: Consent,
    suppression: SuppressionKeys | None = None,
) -> SubscribeOutcome:
    """Record a subscription request; a confirmed address stays confirmed and hears nothing.

    With ``suppression`` keys, an address on the suppression list (hard bounce, complaint) is
    refused silently: nothing stored, no email, and the caller answers as for any address.
    """
    name = clean_text(name, "name", MAX_NAME_LENGTH)
    if suppression is not None and is_suppressed(suppression, address.key):
        return SubscribeOutcome(None, send_confirmation=False)
    now = utcnow()
    session = db.session
    row = session.execute(
        _subscribe_statement(session.get_bind().dialect.name),
        {
            "email": address.email,
            "email_key": address.key,
            "name": name,
            "language": language,
            "now": now,
            "since": cap_window_start(now),
            "consent_ip": consent.ip,
            "consent_page": consent.page[:MAX_PAGE_URL_LENGTH] if consent.page else None,
            "consent_user_agent": (consent.user_agent or "")[:400] or None,
            "consent_source": consent.source,
        },
    ).one_or_none()
    if row is None:
        return SubscribeOutcome(None, send_confirmation=False)
    subscriber = PendingSubscriber(row.id, row.email, row.email_key, row.name, row.language)
    instruments.SUBSCRIPTIONS.inc()
    # Subscription bombing: at most a few confirmation emails per address per day.
    under_cap = row.recent_confirmations < CONFIRMATIONS_PER_ADDRESS_PER_DAY
    return SubscribeOutcome(subscriber, send_confirmation=under_cap)


def _subscriber_token(
    signer: TokenSigner, purpose: TokenPurpose, subscriber_id: int, email_key: str
) -> str:
    # The fingerprint ties the token to the address: it dies if the address changes.
    return signer.sign(
        purpose, {"s": subscriber_id, "f": signer.fingerprint(purpose.salt, email_key)}
    )


def confirmation_token(signer: TokenSigner, subscriber: Subscriber | PendingSubscriber) -> str:
    return _subscriber_token(signer, CONFIRM_SUBSCRIPTION, subscriber.id, subscriber.email_key)


def unsubscribe_token(signer: TokenSigner, subscriber_id: int, email_key: str) -> str:
    return _subscriber_token(signer, UNSUBSCRIBE, subscriber_id, email_key)


def preferences_token(signer: TokenSigner, subscriber: Subscriber) -> str:
    return _subscriber_token(signer, MANAGE_PREFERENCES, subscriber.id, subscriber.email_key)


def preferences_token_for(signer: TokenSigner, subscriber_id: int, email_key: str) -> str:
    """``preferences_token`` from the two values a sending batch holds (no row loaded)."""
    return _subscriber_token(signer, MANAGE_PREFERENCES, subscriber_id, email_key)


@dataclass(frozen=True)
class LinkOutcome:
    state: LinkState
    subscriber: Subscriber | None = None


def _read_link(
    signer: TokenSigner, purpose: TokenPurpose, token: str
) -> tuple[TokenResult, Subscriber | None]:
    """Verify a subscriber link; the subscriber is None unless signature and fingerprint hold."""
    result = signer.verify(purpose, token)
    data = result.data
    if result.invalid or not isinstance(data, dict):
        return result, None
    subscriber_id, fingerprint = data.get("s"), data.get("f")
    if not isinstance(subscriber_id, int) or not isinstance(fingerprint, str):
        return result, None
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return result, None
    if not signer.fingerprint_matches(fingerprint, purpose.salt, subscriber.email_key):
        return result, None
    return result, subscriber


def confirmation_state(signer: TokenSigner, token: str) -> LinkOutcome:
    """What confirming with this link would do, changing nothing: ``OK`` when it would confirm.

    The link's page is fetched by mail scanners, so only its POST may confirm.
    """
    result, subscriber = _read_link(signer, CONFIRM_SUBSCRIPTION, token)
    if subscriber is None:
        return LinkOutcome(LinkState.INVALID)
    if subscriber.status == SubscriberStatus.CONFIRMED:
        return LinkOutcome(LinkState.ALREADY_DONE, subscriber)
    if result.expired:
        return LinkOutcome(LinkState.EXPIRED, subscriber)
    if subscriber.status != SubscriberStatus.PENDING:
        # Left (or bounced) since this link was sent: an old link must not re-subscribe them.
        return LinkOutcome(LinkState.INVALID, subscriber)
    return LinkOutcome(LinkState.OK, subscriber)


def confirm_subscription(signer: TokenSigner, token: str, *, ip: str | None) -> LinkOutcome:
    """Confirm from an emailed link (its POST); confirming twice is harmless."""
    outcome = confirmation_state(signer, token)
    if outcome.state != LinkState.OK or outcome.subscriber is None:
        return outcome
    subscriber = outcome.subscriber
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at = utcnow()
    subscriber.confirmed_ip = ip
    subscriber.unsubscribed_at = None
    subscriber.unsubscribe_method = None
    subscriber.hard_bounces = 0
    instruments.CONFIRMATIONS.inc()
    emit_event("subscriber.confirmed", subscriber_event_data(subscriber))
    return LinkOutcome(LinkState.OK, subscriber)


def subscriber_for_expired_confirmation(signer: TokenSigner, token: str) -> Subscriber | None:
    """The still-pending subscriber behind a genuine but expired link, to send a new one."""
    _result, subscriber = _read_link(signer, CONFIRM_SUBSCRIPTION, token)
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING:
        return None
    return subscriber


def subscriber_from_unsubscribe_token(signer: TokenSigner, token: str) -> LinkOutcome:
    """Unsubscribe links never expire (``config.UNSUBSCRIBE``): leaving must always work."""
    _result, subscriber = _read_link(signer, UNSUBSCRIBE, token)
    if subscriber is None:
        return LinkOutcome(LinkState.INVALID)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return LinkOutcome(LinkState.ALREADY_DONE, subscriber)
    return LinkOutcome(LinkState.OK, subscriber)


def subscriber_from_preferences_token(signer: TokenSigner, token: str) -> LinkOutcome:
    result, subscriber = _read_link(signer, MANAGE_PREFERENCES, token)
    if subscriber is None:
        return LinkOutcome(LinkState.INVALID)
    if result.expired:
        return LinkOutcome(LinkState.EXPIRED, subscriber)
    return LinkOutcome(LinkState.OK, subscriber)


def unsubscribe(subscriber: Subscriber, *, method: str) -> bool:
    """Withdraw consent; returns False when the subscriber had already left."""
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return False
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = utcnow()
    subscriber.unsubscribe_method = method
    instruments.UNSUBSCRIBES.labels(method).inc()
    emit_event("subscriber.unsubscribed", {**subscriber_event_data(subscriber), "method": method})
    return True


def mark_bounced(subscriber: Subscriber, *, source: str, now: datetime | None = None) -> bool:
    """Mark a pending or confirmed subscriber bounced (mail to them cannot be delivered);
    counts it and queues ``subscriber.bounced`` in the caller's transaction. Returns False
    when they were already inactive (nothing changes, nothing is said again)."""
    if subscriber.status not in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED):
        return False
    subscriber.status = SubscriberStatus.BOUNCED
    subscriber.bounced_at = now or utcnow()
    instruments.BOUNCES.labels(source).inc()
    emit_event("subscriber.bounced", subscriber_event_data(subscriber))
    return True


def subscriber_event_data(subscriber: Subscriber) -> dict[str, object]:
    """What a webhook says about a subscriber (issue 14)."""
    return {"id": subscriber.id, "email": subscriber.email, "language": subscriber.language}


def change_language(subscriber: Subscriber, language: str) -> None:
    subscriber.language = clean_language(language, subscriber.language)
