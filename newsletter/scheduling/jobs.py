"""What the scheduler runs. Each job is idempotent: firing it twice sends nothing twice.

APScheduler stores jobs by reference (``module:function``) in the database, so these are plain
module-level functions taking ids; they find the Flask app the worker bound at start.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..delivery.digest_runs import RunOutcome, run_digest
from ..domain.digests import (
    create_scheduled_run,
    mark_missed,
    record_missed_run,
)
from ..domain.feed_import import FeedError, import_feed, read_feed_source
from ..extensions import db
from ..models import Digest, DigestSchedule, DigestStatus, ScheduleStatus, utcnow
from ..observability.logs import log_context
from .triggers import schedule_trigger

log = logging.getLogger(__name__)

FIRE_DIGEST = "newsletter.scheduling.jobs:fire_digest"
FIRE_SCHEDULE = "newsletter.scheduling.jobs:fire_schedule"
POLL_FEED = "newsletter.scheduling.jobs:poll_feed"
POLL_BOUNCES = "newsletter.scheduling.jobs:poll_bounces"

_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """The app whose database the jobs of this process work on."""
    global _app
    _app = app


def _bound_app() -> Flask:
    if _app is None:
        raise RuntimeError("scheduler jobs need bind_app(app) first")
    return _app


def fire_digest(digest_id: int) -> str:
    """A one-off digest is due: start it (a no-op if another scheduler already did)."""
    with _bound_app().app_context(), log_context(digest_id=digest_id):
        try:
            return run_digest(digest_id).result
        finally:
            db.session.remove()


def latest_fire_time(schedule: DigestSchedule, now: datetime, horizon: timedelta) -> datetime:
    """The period a recurring job fires for: its latest fire time at or before ``now``.

    APScheduler does not hand the scheduled time to the job; the trigger gives it back. Naive UTC.
    """
    trigger = schedule_trigger(schedule)
    aware_now = now.replace(tzinfo=UTC)
    look_back = timedelta(seconds=1)
    while look_back <= horizon * 2:
        fire = trigger.get_next_fire_time(None, aware_now - look_back)
        if fire is not None and fire <= aware_now:
            while True:
                following = trigger.get_next_fire_time(fire, fire)
                if following is None or following > aware_now:
                    break
                fire = following
            return fire.astimezone(UTC).replace(tzinfo=None, microsecond=0)
        look_back *= 2
    return now.replace(microsecond=0)


def start_schedule_period(schedule_id: int, now: datetime | None = None) -> RunOutcome | None:
    """Create this period's digest of a recurring schedule (once) and start it."""
    now = now or utcnow()
    schedule = db.session.get(DigestSchedule, schedule_id)
    if schedule is None or schedule.status != ScheduleStatus.ACTIVE:
        return None
    grace = timedelta(seconds=current_app.config["DIGEST_MISFIRE_GRACE_SECONDS"])
    send_at = latest_fire_time(schedule, now, grace)
    digest = create_scheduled_run(schedule, send_at)
    if digest is None:
        db.session.rollback()
        log.info("schedule %s: the run at %s exists already", schedule_id, send_at)
        return None
    db.session.commit()
    with log_context(digest_id=digest.id):
        return run_digest(digest.id, now)


def fire_schedule(schedule_id: int) -> str:
    """A recurring schedule's time has come."""
    with _bound_app().app_context():
        try:
            outcome = start_schedule_period(schedule_id)
            return outcome.result if outcome else "exists"
        finally:
            db.session.remove()


def poll_feed() -> str:
    """Import the operator's feed (``NEWSLETTER_FEED_POLL_URL``)."""
    app = _bound_app()
    with app.app_context():
        url = app.config.get("FEED_POLL_URL")
        if not url:
            return "no feed"
        try:
            report = import_feed(read_feed_source(url))
            db.session.commit()
        except (FeedError, SQLAlchemyError) as exc:
            db.session.rollback()
            log.warning("feed poll of %s failed: %s", url, exc)
            return "failed"
        finally:
            db.session.remove()
        log.info("feed poll of %s: %s", url, report.describe())
        return report.describe()


def run_due_now(now: datetime | None = None) -> int:
    """Start what is due now straight from the rows, without APScheduler (call in an app
    context); returns how many runs started.

    ``worker --until-idle`` uses this when another worker holds the scheduler lease, which may
    be a dead worker's: waiting for it would skip a due digest. It is safe alongside a live
    leader: a digest starts through a compare-and-set on its status, and a recurring period is
    unique on ``(schedule_id, send_at)``.
    """
    now = now or utcnow()
    grace = timedelta(seconds=current_app.config["DIGEST_MISFIRE_GRACE_SECONDS"])
    started = 0
    due = db.session.scalars(
        select(Digest.id).where(
            Digest.status == DigestStatus.SCHEDULED,
            Digest.paused.is_(False),
            Digest.send_at <= now,
            Digest.send_at >= now - grace,
        )
    ).all()
    db.session.rollback()
    for digest_id in due:
        if run_digest(digest_id, now).result != "not_due":
            started += 1
    schedules = db.session.scalars(
        select(DigestSchedule.id).where(DigestSchedule.status == ScheduleStatus.ACTIVE)
    ).all()
    db.session.rollback()
    for schedule_id in schedules:
        schedule = db.session.get(DigestSchedule, schedule_id)
        try:
            fire = latest_fire_time(schedule, now, grace)
        except (ValueError, LookupError):
            continue
        if fire > now or fire < now - grace:
            continue
        exists = db.session.scalar(
            select(Digest.id).where(Digest.schedule_id == schedule_id, Digest.send_at == fire)
        )
        db.session.rollback()
        if exists is None and start_schedule_period(schedule_id, now) is not None:
            started += 1
    return started


def record_missed_job(job_id: str, scheduled_run_time: datetime) -> None:
    """The scheduler skipped a run beyond the grace period: keep it visible as ``missed``."""
    kind, _, raw_id = job_id.partition("-")
    if not raw_id.isdigit():
        return
    with _bound_app().app_context():
        try:
            if kind == "digest":
                mark_missed(int(raw_id))
            elif kind == "schedule":
                send_at = scheduled_run_time.astimezone(UTC).replace(tzinfo=None, microsecond=0)
                record_missed_run(int(raw_id), send_at)
            db.session.commit()
            log.warning("%s missed its run at %s", job_id, scheduled_run_time)
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("could not record the missed run of %s", job_id)
        finally:
            db.session.remove()


def poll_bounces() -> str:
    """Read the bounce mailbox (``NEWSLETTER_BOUNCE_MAILBOX_URL``) and retry inbound messages
    whose processing failed before (issue 12)."""
    import imaplib

    from ..inbound.imap import MailboxUrlError, poll_bounce_mailbox
    from ..inbound.processor import retry_pending

    app = _bound_app()
    with app.app_context():
        try:
            retried = retry_pending()
            url = app.config.get("BOUNCE_MAILBOX_URL")
            handled = poll_bounce_mailbox(url) if url else 0
        except (imaplib.IMAP4.error, OSError, MailboxUrlError, SQLAlchemyError) as exc:
            db.session.rollback()
            log.warning("bounce mailbox poll failed: %s", exc)
            return "failed"
        finally:
            db.session.remove()
        log.info("bounce mailbox: %s handled, %s retried", handled, retried)
        return f"{handled} handled, {retried} retried"
