"""Digests: what goes into one (the releases since the last one sent), their life cycle, and the
recurring schedules that create them.

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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, exists, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ..config import DEFAULT_TIMEZONE, DIGEST_MAX_RELEASES, LANGUAGES
from ..dates import format_date
from ..extensions import db
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestSchedule,
    DigestStatus,
    Release,
    ScheduleStatus,
    release_carriers,
    utcnow,
)
from .recurrence import WEEKDAYS, parse_recurrence
from .releases import ENCODED_WORD, ENCODED_WORD_REFUSED, InvalidInput, iso, parse_datetime
from .wording import Message, translatable

CANCELLED = "cancelled"
MISSED = "missed"
# A send time this far in the past is still "now" (clocks of client and server differ a little).
SEND_AT_TOLERANCE = timedelta(minutes=5)
MAX_SUBJECT_LENGTH = 300


class DigestStateError(ValueError):
    """The digest or schedule is not in a state that allows this (e.g. resuming a sent one)."""


# ---------------------------------------------------------------------------------------------
# Input


def _subject(data: Mapping[str, Any], errors: dict[str, str]) -> str | None:
    value = data.get("subject")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        errors["subject"] = translatable("Must be text.")
        return None
    value = " ".join(value.split()) if not any(ord(c) < 32 for c in value.strip()) else None
    if value is None:
        errors["subject"] = translatable("Line breaks and control characters are not allowed.")
        return None
    if len(value) > MAX_SUBJECT_LENGTH:
        errors["subject"] = Message("At most %(count)d characters.", count=MAX_SUBJECT_LENGTH)
        return None
    if ENCODED_WORD.search(value):
        errors["subject"] = ENCODED_WORD_REFUSED
        return None
    return value


def _language(data: Mapping[str, Any], errors: dict[str, str]) -> str | None:
    value = data.get("language")
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        errors["language"] = Message("Required: one of %(choices)s.", choices=", ".join(LANGUAGES))
        return None
    return value.strip().lower()


def _unknown(data: Mapping[str, Any], allowed: set[str], errors: dict[str, str]) -> None:
    for name in sorted(set(data) - allowed):
        errors[name] = translatable("Unknown field.")


def clean_digest_request(data: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """``{language, send_at?, subject?}``: ``send_at`` ISO 8601, absent meaning now."""
    now = now or utcnow()
    errors: dict[str, str] = {}
    _unknown(data, {"language", "send_at", "subject"}, errors)
    values: dict[str, Any] = {
        "language": _language(data, errors),
        "subject": _subject(data, errors),
        "send_at": now,
    }
    raw = data.get("send_at")
    if raw not in (None, ""):
        try:
            send_at = parse_datetime(raw)
        except (ValueError, TypeError):
            errors["send_at"] = translatable(
                "Must be an ISO 8601 date-time, e.g. 2025-03-01T09:00:00+01:00."
            )
        else:
            if send_at < now - SEND_AT_TOLERANCE:
                errors["send_at"] = translatable("Must not be in the past.")
            # Slightly in the past (clock skew) means now.
            values["send_at"] = max(send_at, now)
    if errors:
        raise InvalidInput(errors)
    return values


def create_digest(data: Mapping[str, Any], now: datetime | None = None) -> Digest:
    """A one-off digest, scheduled at ``send_at`` (now when absent); the caller commits."""
    values = clean_digest_request(data, now)
    digest = Digest(
        status=DigestStatus.SCHEDULED,
        paused=False,
        recipients=0,
        sent=0,
        failed=0,
        **values,
    )
    db.session.add(digest)
    db.session.flush()
    return digest


# ---------------------------------------------------------------------------------------------
# Composition


def last_sent_at(language: str) -> datetime | None:
    """When the releases of the last digest sent in ``language`` were gathered."""
    return db.session.scalar(
        select(func.max(Digest.started_at)).where(
            Digest.language == language, Digest.status == DigestStatus.SENT
        )
    )


def _carried_in(language: str):
    """Releases already carried by a digest of ``language`` (recorded at compose time)."""
    return exists().where(
        release_carriers.c.language == language, release_carriers.c.release_id == Release.id
    )


def first_composed_at(language: str) -> datetime | None:
    """When the first digest of ``language`` that carried anything was composed."""
    return db.session.scalar(
        select(func.min(Digest.started_at))
        .select_from(release_carriers)
        .join(Digest, Digest.id == release_carriers.c.digest_id)
        .where(release_carriers.c.language == language)
    )


def releases_for_digest(
    language: str, now: datetime, *, first_window_days: int, limit: int = DIGEST_MAX_RELEASES
) -> list[Release]:
    """Releases of ``language`` not yet carried by any digest of that language (newest first).

    Chosen by "not yet carried", not by time windows: a release imported late with an older
    date (a feed poll, a backdated entry) goes into the next digest, and what a cap leaves out
    waits for the next one (the oldest go first, so nothing waits forever). The window only
    bounds the backlog: the first digest of a language looks ``first_window_days`` back, and
    later ones take anything published since then or created since the first digest.
    """
    window = timedelta(days=first_window_days)
    began = first_composed_at(language)
    if began is None:
        recent = Release.published_at > now - window
    else:
        recent = (Release.published_at > began - window) | (Release.created_at > began)
    query = (
        select(Release)
        .where(
            Release.language == language,
            Release.published_at <= now,
            recent,
            ~_carried_in(language),
        )
        .order_by(Release.published_at.asc(), Release.id.asc())
        .limit(limit)
    )
    chosen = list(db.session.scalars(query))
    chosen.sort(key=lambda release: (release.published_at, release.id), reverse=True)
    return chosen


def lock_composition(language: str) -> None:
    """At most one digest of a language composes at a time (held until the transaction ends).

    PostgreSQL: a transaction-scoped advisory lock per language. SQLite: the caller's claim of
    the digest row already holds the database's single write lock until commit.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"newsletter-digest-compose:{language}"},
        )


def default_subject(language: str, releases: list[Release], when: datetime) -> str:
    """The date in the digest's language, then the top headline."""
    date = format_date(when, language)
    if not releases:
        return date
    subject = f"{date} — {releases[0].title}"
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[: MAX_SUBJECT_LENGTH - 1] + "…"
    return subject


def compose_digest(digest: Digest, now: datetime, *, first_window_days: int) -> list[Release]:
    """Attach the releases due in ``digest`` and settle its subject; returns the releases.

    Each release taken is recorded in ``release_carriers`` in the same transaction, under the
    language's composition lock, so no other digest of the language can take it again.
    """
    lock_composition(digest.language)
    releases = releases_for_digest(digest.language, now, first_window_days=first_window_days)
    digest.releases = releases
    if releases:
        db.session.flush()
        db.session.execute(
            insert(release_carriers),
            [
                {"language": digest.language, "release_id": release.id, "digest_id": digest.id}
                for release in releases
            ],
        )
    if not digest.subject:
        digest.subject = default_subject(digest.language, releases, now)
    return releases


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


# ---------------------------------------------------------------------------------------------
# Recurring schedules


def _cron_from_fields(data: Mapping[str, Any], errors: dict[str, str]) -> str | None:
    """``every`` day/week ``at`` HH:MM (``weekday`` for weekly) as a cron expression."""
    every, at, weekday = data.get("every"), data.get("at"), data.get("weekday")
    if every not in ("day", "week"):
        errors["every"] = translatable("One of: day, week (or give a cron expression).")
        return None
    if not isinstance(at, str) or len(at) != 5 or at[2] != ":" or not at.isascii():
        errors["at"] = translatable("A time as HH:MM.")
        return None
    try:
        hour, minute = int(at[:2]), int(at[3:])
    except ValueError:
        errors["at"] = translatable("A time as HH:MM.")
        return None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        errors["at"] = translatable("A time as HH:MM.")
        return None
    if every == "day":
        return f"{minute} {hour} * * *"
    if not isinstance(weekday, str) or weekday.lower()[:3] not in WEEKDAYS:
        errors["weekday"] = Message("One of: %(choices)s.", choices=", ".join(WEEKDAYS))
        return None
    return f"{minute} {hour} * * {weekday.lower()[:3]}"


SCHEDULE_FIELDS = {"language", "cron", "timezone", "subject", "every", "at", "weekday"}


def clean_schedule(
    data: Mapping[str, Any], *, current: DigestSchedule | None = None
) -> dict[str, Any]:
    """Validate a schedule (all fields when creating, the given ones when changing)."""
    errors: dict[str, str] = {}
    _unknown(data, SCHEDULE_FIELDS, errors)
    values: dict[str, Any] = {}
    if current is None or "language" in data:
        values["language"] = _language(data, errors)
    if current is None or "subject" in data:
        values["subject"] = _subject(data, errors)
    timezone = data.get("timezone", current.timezone if current else DEFAULT_TIMEZONE)
    if not isinstance(timezone, str) or not timezone or len(timezone) > 64:
        errors["timezone"] = translatable("A time zone name such as Europe/Brussels.")
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = translatable(
                "Unknown time zone; use a name such as Europe/Brussels."
            )
        else:
            values["timezone"] = timezone
    cron: str | None = None
    if "cron" in data:
        if not isinstance(data["cron"], str) or not data["cron"].strip():
            errors["cron"] = translatable("A cron expression such as '0 8 * * mon'.")
        else:
            cron = " ".join(data["cron"].split())
            if len(cron) > 120:
                errors["cron"] = translatable("At most 120 characters.")
                cron = None
    elif "every" in data or "at" in data:
        cron = _cron_from_fields(data, errors)
    elif current is None:
        errors["cron"] = translatable("Give a cron expression, or every (day/week) and at (HH:MM).")
    else:
        cron = current.cron
    if cron is not None and "timezone" in values:
        try:
            parse_recurrence(cron, values["timezone"])
        except (ValueError, TypeError) as exc:
            errors["cron"] = Message("Not a valid cron expression: %(reason)s", reason=str(exc))
        else:
            values["cron"] = cron
    if errors:
        raise InvalidInput(errors)
    return values


def create_schedule(data: Mapping[str, Any]) -> DigestSchedule:
    schedule = DigestSchedule(status=ScheduleStatus.ACTIVE, **clean_schedule(data))
    db.session.add(schedule)
    db.session.flush()
    return schedule


def update_schedule(schedule: DigestSchedule, data: Mapping[str, Any]) -> DigestSchedule:
    if schedule.status == ScheduleStatus.CANCELLED:
        raise DigestStateError("A cancelled schedule cannot be changed.")
    for name, value in clean_schedule(data, current=schedule).items():
        setattr(schedule, name, value)
    db.session.flush()
    return schedule


def set_schedule_status(schedule: DigestSchedule, status: str) -> None:
    """Pause, resume (active) or cancel a schedule; a cancelled one stays cancelled."""
    if schedule.status == ScheduleStatus.CANCELLED:
        raise DigestStateError("This schedule is cancelled.")
    schedule.status = status


def schedule_as_dict(
    schedule: DigestSchedule, next_run_at: datetime | None = None
) -> dict[str, Any]:
    """The schedule as the API shows it; ``next_run_at`` (naive UTC) comes from the trigger."""
    return {
        "id": schedule.id,
        "language": schedule.language,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "subject": schedule.subject,
        "status": schedule.status,
        "next_run_at": iso(next_run_at) if schedule.status == ScheduleStatus.ACTIVE else None,
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.updated_at),
    }


def schedules_query(status: str | None = None):
    query = select(DigestSchedule).order_by(DigestSchedule.id)
    if status:
        query = query.where(DigestSchedule.status == status)
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
    digest = Digest(
        schedule_id=schedule.id,
        language=schedule.language,
        subject=schedule.subject,
        status=DigestStatus.SCHEDULED,
        send_at=send_at,
        paused=False,
        recipients=0,
        sent=0,
        failed=0,
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
