"""Composing a run: scheduled → sending with a compare-and-set, gather releases, render once,
and fan out one delivery per confirmed subscriber in a single ``INSERT ... SELECT`` (nothing per
subscriber passes through Python, so memory stays flat at any size)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    insert,
    literal,
    select,
)

from ..domain.digest_composition import compose_digest
from ..domain.digests import claim_due_digest, finish_digest
from ..domain.webhooks import emit_event
from ..extensions import db
from ..models import Delivery, Digest, Subscriber, utcnow
from ..models.statuses import DeliveryStatus, DigestStatus, SubscriberStatus
from .delivery_queue import digest_event_data
from .digest_messages import render_digest_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    digest_id: int
    result: str  # not_due, skipped, sending, sent (nobody to send to), failed
    recipients: int = 0


def fan_out(digest_id: int, language: str, now: datetime) -> int:
    """One delivery per confirmed subscriber of ``language``, in one INSERT ... SELECT."""
    recipients = select(
        literal(digest_id, BigInteger),
        Subscriber.id,
        literal(DeliveryStatus.QUEUED.value, String),
        literal(0, Integer),
        literal(now, DateTime),
        literal(now, DateTime),
    ).where(Subscriber.status == SubscriberStatus.CONFIRMED, Subscriber.language == language)
    result = db.session.execute(
        insert(Delivery)
        .from_select(
            ["digest_id", "subscriber_id", "status", "attempts", "next_attempt_at", "updated_at"],
            recipients,
        )
        .execution_options(preserve_rowcount=True)  # SQLAlchemy 2 gives -1 for INSERT without it
    )
    return result.rowcount


def run_digest(digest_id: int, now: datetime | None = None) -> RunOutcome:
    """Start a due digest; commits. Safe to call from several schedulers at once."""
    now = now or utcnow()
    if not claim_due_digest(digest_id, now):
        db.session.rollback()
        return RunOutcome(digest_id, "not_due")
    try:
        digest = db.session.execute(
            select(Digest).where(Digest.id == digest_id).execution_options(populate_existing=True)
        ).scalar_one()
        releases = compose_digest(
            digest, now, first_window_days=current_app.config["DIGEST_FIRST_WINDOW_DAYS"]
        )
        if not releases:
            digest.status = DigestStatus.SKIPPED
            digest.finished_at = now
            db.session.commit()
            log.info("digest %s skipped: no new releases in %s", digest_id, digest.language)
            return RunOutcome(digest_id, "skipped")
        digest.rendered_message = render_digest_template(
            digest.language, digest.subject or "", releases, now, digest_id
        )
        db.session.flush()
        digest.recipients = fan_out(digest_id, digest.language, now)
        if digest.recipients == 0:
            digest.status = DigestStatus.SENT
            digest.finished_at = now
            emit_event("digest.sent", digest_event_data(digest_id, 0, 0, 0))
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.exception("digest %s could not start", digest_id)
        finish_digest(digest_id, DigestStatus.FAILED, now, f"error: {exc}"[:300])
        db.session.commit()
        return RunOutcome(digest_id, "failed")
    log.info("digest %s: %s recipients", digest_id, digest.recipients)
    return RunOutcome(
        digest_id, "sending" if digest.recipients else "sent", recipients=digest.recipients
    )
