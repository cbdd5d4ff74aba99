"""The one processor behind the listener, the IMAP poller and the webhooks.

Every inbound message is first stored raw (``store_inbound``, committed), then processed
(``process_inbound``): classified, applied to the subscriber it names, and recorded with what
it changed. Processing that fails leaves the row stored and pending, retried later
(``retry_pending``); nothing is lost and a malformed message never crashes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from ..config import (
    INBOUND_MAX_ATTEMPTS,
    INBOUND_RAW_KEEP_BYTES,
    INBOUND_STORE_LOCK_TIMEOUT_SECONDS,
    SOFT_BOUNCE_WINDOW,
    SOFT_BOUNCES_BEFORE_BOUNCED,
)
from ..domain.addresses import address_key
from ..domain.return_paths import ReturnPathCodec, ReturnPathToken
from ..domain.subscriptions import mark_bounced, unsubscribe
from ..domain.suppressions import SuppressionKeys, suppress
from ..extensions import db
from ..models import (
    Delivery,
    InboundKind,
    InboundMessage,
    OutboxMessage,
    Subscriber,
    utcnow,
)
from .classify import Classification, classify

log = logging.getLogger(__name__)


def return_path_codec() -> ReturnPathCodec:
    """The codec built from the app's keys (current key signs, fallbacks still verify)."""
    return ReturnPathCodec.from_config(current_app.config)


def suppression_keys() -> SuppressionKeys:
    return SuppressionKeys.from_config(current_app.config)


def store_inbound(
    source: str,
    raw: bytes,
    *,
    envelope_from: str | None = None,
    recipients: Sequence[str] = (),
) -> int:
    """Store a message before anything else looks at it; commits and returns its id.

    Raises when it cannot (database unreachable, locked past the lock timeout): the caller
    must then refuse the message temporarily."""
    if db.session.get_bind().dialect.name == "postgresql":
        # For this transaction only; the value is ours, never the message's.
        timeout_ms = int(INBOUND_STORE_LOCK_TIMEOUT_SECONDS * 1000)
        db.session.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
    row = InboundMessage(
        source=source,
        received_at=utcnow(),
        envelope_from=(envelope_from or "")[:320] or None,
        recipients=", ".join(recipients)[:2000] or None,
        size=len(raw),
        raw=raw,
        kind=InboundKind.PENDING,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


@dataclass(frozen=True)
class Target:
    """Who a message is about: the subscriber, and the digest when it names a delivery."""

    subscriber: Subscriber | None
    digest_id: int | None = None


def _target_of_token(token: ReturnPathToken) -> Target:
    if token.kind == "delivery":
        delivery = db.session.get(Delivery, token.id)
        if delivery is None:
            return Target(None)
        return Target(db.session.get(Subscriber, delivery.subscriber_id), delivery.digest_id)
    if token.kind == "outbox":
        outbox = db.session.get(OutboxMessage, token.id)
        if outbox is None:
            return Target(None)
        return Target(_subscriber_by_key(outbox.recipient_key))
    return Target(db.session.get(Subscriber, token.id))


def _subscriber_by_key(email_key: str) -> Subscriber | None:
    return db.session.scalars(select(Subscriber).where(Subscriber.email_key == email_key)).first()


def _target(classification: Classification, use_addresses: bool) -> Target:
    for token in classification.tokens:
        target = _target_of_token(token)
        if target.subscriber is not None:
            return target
    if use_addresses:
        for address in classification.addresses:
            subscriber = _subscriber_by_key(address_key(address.strip()))
            if subscriber is not None:
                return Target(subscriber)
    return Target(None)


def _soft_bounce_score(row: InboundMessage, subscriber_id: int, now: datetime) -> int:
    """Mailman's bounce score: the days inside ``SOFT_BOUNCE_WINDOW`` with a soft bounce, this
    one included. One per day however many arrive, and a delivery (digest) counts only on the
    first day it bounced: an MTA reporting the same message twice is one failure."""
    earlier = db.session.execute(
        select(InboundMessage.received_at, InboundMessage.digest_id).where(
            InboundMessage.subscriber_id == subscriber_id,
            InboundMessage.kind == InboundKind.SOFT_BOUNCE,
            InboundMessage.received_at >= now - SOFT_BOUNCE_WINDOW,
            InboundMessage.id != row.id,
        )
    ).all()
    bounces = sorted([*earlier, (row.received_at or now, row.digest_id)], key=lambda b: b[0])
    days: set[date] = set()
    digests: set[int] = set()
    for received_at, digest_id in bounces:
        if digest_id is not None:
            if digest_id in digests:
                continue
            digests.add(digest_id)
        days.add(received_at.date())
    return len(days)


def _mark_bounced(subscriber: Subscriber, now) -> bool:
    # Through the domain: the same status change, counter and webhook event as everywhere.
    return mark_bounced(subscriber, source="inbound", now=now)


def apply_classification(row: InboundMessage, classification: Classification) -> str:
    """Change what the message calls for; returns what changed, in words for staff."""
    now = utcnow()
    # Without VERP the addresses a bounce names are all there is; with it, only tokens count.
    use_addresses = not current_app.config.get("BOUNCE_ADDRESS") or row.source in {
        "ses",
        "postmark",
    }
    target = _target(classification, use_addresses)
    subscriber = target.subscriber
    row.kind = classification.kind
    row.status_code = classification.status_code
    row.digest_id = target.digest_id
    row.subscriber_id = subscriber.id if subscriber is not None else None
    kind = classification.kind
    if kind == InboundKind.UNKNOWN:
        return "nothing (kept for staff)"
    untraced = subscriber is None and not use_addresses and not classification.tokens
    if untraced and kind != InboundKind.DELAYED:  # a delay notice is noise, traced or not
        return _untraced(row, classification)
    if subscriber is None:
        return f"nothing: {classification.detail}, no subscriber of ours named"
    keys = suppression_keys()
    if kind == InboundKind.HARD_BOUNCE:
        subscriber.hard_bounces = (subscriber.hard_bounces or 0) + 1
        changed = _mark_bounced(subscriber, now)
        suppress(keys, subscriber.email_key, "hard_bounce", classification.detail)
        return f"subscriber {subscriber.id} " + ("bounced" if changed else "already inactive")
    if kind == InboundKind.DELAYED:
        return f"nothing: subscriber {subscriber.id}, a delay notice is not a bounce"
    if kind == InboundKind.SOFT_BOUNCE:
        score = _soft_bounce_score(row, subscriber.id, now)
        if score >= SOFT_BOUNCES_BEFORE_BOUNCED and _mark_bounced(subscriber, now):
            return f"subscriber {subscriber.id} bounced (soft bounces on {score} days)"
        return (
            f"subscriber {subscriber.id}: soft bounce score {score}/{SOFT_BOUNCES_BEFORE_BOUNCED}"
        )
    if kind == InboundKind.COMPLAINT:
        left = unsubscribe(subscriber, method="complaint")
        subscriber.unsubscribe_reason = classification.detail[:300]
        suppress(keys, subscriber.email_key, "complaint", classification.detail)
        return f"subscriber {subscriber.id} " + ("unsubscribed" if left else "already left")
    if kind == InboundKind.UNSUBSCRIBE:
        left = unsubscribe(subscriber, method="mailto")
        if left:
            subscriber.unsubscribe_reason = classification.detail[:300]
        return f"subscriber {subscriber.id} " + ("unsubscribed" if left else "already left")
    return "nothing"


def _untraced(row: InboundMessage, classification: Classification) -> str:
    """With VERP every message of ours carries a token, so a bounce or complaint without one
    cannot be trusted (anyone can write a DSN naming any address): it changes nothing and is
    kept for staff as unknown, with the subscriber its addresses name, if any."""
    row.kind = InboundKind.UNKNOWN
    named = _target(classification, use_addresses=True).subscriber
    row.subscriber_id = named.id if named is not None else None
    about = f"subscriber {named.id}" if named is not None else "no subscriber of ours"
    return f"nothing: {classification.detail} for {about}, no return-path token (kept for staff)"


def _finish(row: InboundMessage, outcome: str) -> None:
    row.outcome = outcome[:500]
    row.processed_at = utcnow()
    row.error = None
    # Understood mail needs no copy; unknown mail is kept (capped) for staff to read.
    if row.kind == InboundKind.UNKNOWN and row.raw is not None:
        row.raw = row.raw[:INBOUND_RAW_KEEP_BYTES]
    elif row.source not in {"ses", "postmark"}:
        row.raw = None


def process_inbound(message_id: int) -> str | None:
    """Classify and apply a stored message; commits. On failure the row stays pending with its
    error and attempt count, to be retried; returns the outcome or None when it failed."""
    row = db.session.get(InboundMessage, message_id)
    if row is None or row.kind != InboundKind.PENDING:
        return None
    config = current_app.config
    try:
        classification = classify(
            row.raw or b"",
            [r.strip() for r in (row.recipients or "").split(",") if r.strip()],
            return_path_codec(),
            config.get("BOUNCE_ADDRESS") or "",
        )
        outcome = apply_classification(row, classification)
        _finish(row, outcome)
        db.session.commit()
        return outcome
    except Exception as exc:  # noqa: BLE001 - stored already; recorded for a retry
        db.session.rollback()
        log.exception("inbound message %s could not be processed", message_id)
        _record_failure(message_id, exc)
        return None


def _record_failure(message_id: int, exc: Exception) -> None:
    try:
        row = db.session.get(InboundMessage, message_id)
        if row is not None:
            row.attempts = (row.attempts or 0) + 1
            row.error = f"{type(exc).__name__}: {exc}"[:500]
            db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()


def receive(
    source: str,
    raw: bytes,
    *,
    envelope_from: str | None = None,
    recipients: Sequence[str] = (),
) -> tuple[int, str | None]:
    """Store then process: the stored id, and the outcome (None when left for a retry)."""
    message_id = store_inbound(source, raw, envelope_from=envelope_from, recipients=recipients)
    return message_id, process_inbound(message_id)


def retry_pending(limit: int = 100) -> int:
    """Process again what failed before (fewer than ``INBOUND_MAX_ATTEMPTS`` tries)."""
    ids = db.session.scalars(
        select(InboundMessage.id)
        .where(
            InboundMessage.kind == InboundKind.PENDING,
            InboundMessage.attempts < INBOUND_MAX_ATTEMPTS,
            InboundMessage.received_at <= utcnow() - timedelta(seconds=5),
        )
        .order_by(InboundMessage.id)
        .limit(limit)
    ).all()
    done = 0
    for message_id in ids:
        if process_inbound(message_id) is not None:
            done += 1
    return done
