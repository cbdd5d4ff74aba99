"""Digests: their life cycle, from scheduled to sent, and what the API shows of them. What goes
into one is ``digest_composition``; the recurring schedules that create them, ``schedules``.

Statuses are the contract's: scheduled, sending, sent, skipped, failed. Pausing is the
``paused`` flag; cancelling records ``failed`` with the reason ``cancelled``; a run missed beyond
the grace period is ``failed`` with the reason ``missed``. Moves between statuses are
compare-and-set updates, so two workers racing on one digest cannot both win.

No flask.request and no SMTP here; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Delivery, DeliveryStatus, Digest, DigestSchedule, DigestStatus, utcnow
from .field_rules import validate
from .releases import iso
from .requests import DigestRequest

CANCELLED = "cancelled"
MISSED = "missed"


class DigestStateError(ValueError):
    """The digest or schedule is not in a state that allows this (e.g. resuming a sent one)."""


def new_digest(**values: Any) -> Digest:
    """A scheduled digest row with nothing sent yet (not added to the session)."""
    return Digest(
        status=DigestStatus.SCHEDULED, paused=False, recipients=0, sent=0, failed=0, **values
    )


def create_digest(data: Mapping[str, Any], now: datetime | None = None) -> Digest:
    """A one-off digest ``{language, send_at?, subject?}``, scheduled at ``send_at`` (now when
    absent); the caller commits."""
    now = now or utcnow()
    request = validate(DigestRequest, data, now=now)
    digest = new_digest(
        language=request.language, subject=request.subject, send_at=request.send_at or now
    )
    db.session.add(digest)
    db.session.flush()
    return digest


# ---------------------------------------------------------------------------------------------
# Life cycle (compare-and-set)


def claim_due_digest(digest_id: int, now: datetime) -> bool:
    """scheduled → sending, only if due, not paused and nobody moved it first."""
    result = db.session.execute(
        update(Digest)
        .where(
            Digest.id == digest_id,
            Digest.status == DigestStatus.SCHEDULED,
            Digest.paused.is_(False),
            Digest.send_at <= now + timedelta(seconds=1),
        )
        .values(status=DigestStatus.SENDING, started_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish_digest(digest_id: int, status: str, now: datetime, reason: str | None = None) -> bool:
    """Record the end of a run that is still scheduled or sending; False if it already ended."""
    result = db.session.execute(
        update(Digest)
        .where(
            Digest.id == digest_id,
            Digest.status.in_([DigestStatus.SCHEDULED, DigestStatus.SENDING]),
        )
        .values(status=status, finished_at=now, failure_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def mark_missed(digest_id: int, now: datetime | None = None) -> bool:
    """A scheduled digest whose time passed beyond the grace period while no worker ran."""
    result = db.session.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == DigestStatus.SCHEDULED)
        .values(status=DigestStatus.FAILED, failure_reason=MISSED, finished_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def pause_digest(digest: Digest) -> None:
    if digest.status not in (DigestStatus.SCHEDULED, DigestStatus.SENDING):
        raise DigestStateError(f"A {digest.status} digest cannot be paused.")
    digest.paused = True


def resume_digest(digest: Digest, now: datetime | None = None) -> None:
    if digest.status not in (DigestStatus.SCHEDULED, DigestStatus.SENDING):
        raise DigestStateError(f"A {digest.status} digest cannot be resumed.")
    digest.paused = False
    now = now or utcnow()
    if digest.status == DigestStatus.SCHEDULED and digest.send_at < now:
        # Its time passed while paused: resuming means "send now", not "it was missed".
        digest.send_at = now


def cancel_digest(digest: Digest, now: datetime | None = None) -> int:
    """Stop a digest for good: nothing more goes out. Returns how many deliveries were dropped."""
    now = now or utcnow()
    if digest.status not in (DigestStatus.SCHEDULED, DigestStatus.SENDING):
        raise DigestStateError(f"A {digest.status} digest cannot be cancelled.")
    if not finish_digest(digest.id, DigestStatus.FAILED, now, CANCELLED):
        raise DigestStateError("The digest has just finished.")
    dropped = db.session.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest.id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.CANCELLED, smtp_response=CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(digest)
    return dropped


def get_digest(digest_id: int) -> Digest | None:
    return db.session.get(Digest, digest_id)


@dataclass(frozen=True)
class Progress:
    recipients: int
    sent: int
    failed: int
    pending: int
    cancelled: int  # deliveries called off: the subscriber left or bounced first

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.cancelled


def digest_progress(digest: Digest) -> Progress:
    """Counters of a digest; ``pending`` and ``cancelled`` are counted from its deliveries."""
    counts = dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(
                Delivery.digest_id == digest.id,
                Delivery.status.in_(
                    [DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.CANCELLED]
                ),
            )
            .group_by(Delivery.status)
        ).all()
    )
    pending = counts.get(DeliveryStatus.QUEUED, 0) + counts.get(DeliveryStatus.SENDING, 0)
    return Progress(
        recipients=digest.recipients,
        sent=digest.sent,
        failed=digest.failed,
        pending=pending,
        cancelled=counts.get(DeliveryStatus.CANCELLED, 0),
    )


def digest_as_dict(digest: Digest, progress: Progress | None = None) -> dict[str, Any]:
    """The JSON shape of a digest in the API."""
    progress = progress or digest_progress(digest)
    return {
        "id": digest.id,
        "status": digest.status,
        "language": digest.language,
        "subject": digest.subject,
        "send_at": iso(digest.send_at),
        "paused": digest.paused,
        "failure_reason": digest.failure_reason,
        "schedule_id": digest.schedule_id,
        "recipients": progress.recipients,
        "sent": progress.sent,
        "failed": progress.failed,
        "pending": progress.pending,
        "cancelled": progress.cancelled,
        "created_at": iso(digest.created_at),
        "started_at": iso(digest.started_at),
        "finished_at": iso(digest.finished_at),
        "releases": [release.id for release in digest.releases],
    }


def digests_query(status: str | None = None, language: str | None = None):
    query = select(Digest).order_by(Digest.send_at.desc(), Digest.id.desc())
    if status:
        query = query.where(Digest.status == status)
    if language:
        query = query.where(Digest.language == language)
    return query


def prepare_resend_failed(digest: Digest, now: datetime | None = None) -> int:
    """Queue again every failed delivery of a digest that went out; returns how many.

    The digest goes back to ``sending`` so workers pick the deliveries up; subscribers who left
    since are skipped at claim time like any other.
    """
    now = now or utcnow()
    if digest.status not in (DigestStatus.SENT, DigestStatus.SENDING) and not (
        digest.status == DigestStatus.FAILED and digest.failure_reason not in (CANCELLED, MISSED)
    ):
        raise DigestStateError(f"A {digest.status} digest has nothing to re-send.")
    if digest.rendered_message is None:
        raise DigestStateError("This digest was never rendered.")
    requeued = db.session.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest.id, Delivery.status == DeliveryStatus.FAILED)
        .values(
            status=DeliveryStatus.QUEUED,
            attempts=0,
            next_attempt_at=now,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if requeued:
        db.session.execute(
            update(Digest)
            .where(Digest.id == digest.id)
            .values(
                status=DigestStatus.SENDING,
                failed=Digest.failed - requeued,
                finished_at=None,
                failure_reason=None,
            )
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(digest)
    return requeued


def deliveries_query(digest_id: int, status: str | None = None):
    query = select(Delivery).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
    if status:
        query = query.where(Delivery.status == status)
    return query


def create_scheduled_run(schedule: DigestSchedule, send_at: datetime) -> Digest | None:
    """The digest of one period of ``schedule``; None when that period already has one.

    ``(schedule_id, send_at)`` is unique: two schedulers firing the same period make one row.
    Runs in a savepoint so a conflict leaves the caller's transaction usable.
    """
    exists_already = db.session.scalar(
        select(Digest.id).where(and_(Digest.schedule_id == schedule.id, Digest.send_at == send_at))
    )
    if exists_already is not None:
        return None
    digest = new_digest(
        schedule_id=schedule.id,
        language=schedule.language,
        subject=schedule.subject,
        send_at=send_at,
    )
    try:
        with db.session.begin_nested():
            db.session.add(digest)
    except IntegrityError:
        return None
    return digest


def record_missed_run(schedule_id: int, send_at: datetime, now: datetime | None = None) -> bool:
    """A recurring period missed beyond the grace period: kept as a failed ``missed`` run."""
    schedule = db.session.get(DigestSchedule, schedule_id)
    if schedule is None:
        return False
    digest = create_scheduled_run(schedule, send_at)
    if digest is None:
        return False
    digest.status = DigestStatus.FAILED
    digest.failure_reason = MISSED
    digest.finished_at = now or utcnow()
    return True
