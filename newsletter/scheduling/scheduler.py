"""APScheduler in the worker that holds the lease, with its jobs in the app's database.

The web side never touches APScheduler: it writes ``Digest`` and ``DigestSchedule`` rows. The
leader reconciles those rows into jobs every few seconds: a one-off digest becomes a
``DateTrigger`` job, a recurring schedule a ``CronTrigger`` job in its time zone; pausing,
resuming and cancelling add or remove jobs. Jobs live in the ``apscheduler_jobs`` table, so a
restarted (or newly elected) worker finds them again. A run missed beyond
``DIGEST_MISFIRE_GRACE_SECONDS`` is recorded as ``failed``/``missed``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import select

from ..config import BOUNCE_MAILBOX_POLL_SECONDS
from ..domain.digests import mark_missed
from ..extensions import db
from ..models import Digest, DigestSchedule, DigestStatus, ScheduleStatus, utcnow
from . import jobs
from .triggers import schedule_trigger

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
FEED_POLL_JOB = "feed-poll"
BOUNCE_POLL_JOB = "bounce-mailbox-poll"


def digest_job_id(digest_id: int) -> str:
    return f"digest-{digest_id}"


def schedule_job_id(schedule_id: int) -> str:
    return f"schedule-{schedule_id}"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


class SharedEngineJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the app's engine, which it must not dispose.

    The stock store disposes its engine on shutdown. On the app's shared engine that swapped
    the pool under every other thread: connections checked out at that moment went back to
    the orphaned pool, which was then collected with them still open (psycopg's "connection
    deleted while still open"). The app owns the engine and disposes it itself.
    """

    def shutdown(self) -> None:
        pass


class DigestScheduler:
    """The leader's scheduler: start, reconcile rows into jobs, wait for due jobs, stop."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.grace = int(app.config["DIGEST_MISFIRE_GRACE_SECONDS"])
        with app.app_context():
            engine = db.engine  # the app's engine: same URL, same SQLite pragmas
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SharedEngineJobStore(engine=engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,  # several missed periods make one run, not a burst
                "max_instances": 1,
                "misfire_grace_time": self.grace,
            },
            timezone=UTC,
        )
        # Runs submitted and not finished, per job id (events can arrive in any order).
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.runs = 0  # jobs that ran to the end, for the worker's summary
        self.scheduler.add_listener(
            self._on_event,
            EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED,
        )

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the stored jobs, bring them in line with the rows, then let them fire."""
        jobs.bind_app(self.app)
        self.scheduler.start(paused=True)
        with self.app.app_context():
            try:
                self.reconcile()
            finally:
                db.session.remove()
        self.scheduler.resume()

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def _on_event(self, event: JobEvent) -> None:
        with self._lock:
            if event.code == EVENT_JOB_SUBMITTED:
                self._in_flight[event.job_id] += len(getattr(event, "scheduled_run_times", [1]))
            else:
                self._in_flight[event.job_id] -= 1
            if event.code == EVENT_JOB_EXECUTED:
                self.runs += 1
        if event.code == EVENT_JOB_MISSED:
            jobs.record_missed_job(event.job_id, event.scheduled_run_time)
        elif event.code == EVENT_JOB_ERROR:
            log.error("job %s failed: %s", event.job_id, getattr(event, "exception", None))

    def busy(self) -> bool:
        with self._lock:
            return any(count > 0 for count in self._in_flight.values())

    def _in_flight_ids(self) -> set[str]:
        with self._lock:
            return {job_id for job_id, count in self._in_flight.items() if count > 0}

    def wait_for_due_jobs(self, timeout: float = 120.0) -> bool:
        """Block until every job due now has run (``worker --until-idle``); False on timeout."""
        started = datetime.now(UTC)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            due = [
                job
                for job in self.scheduler.get_jobs()
                if job.next_run_time is not None and job.next_run_time <= started
            ]
            if not due and not self.busy():
                return True
            self.scheduler.wakeup()
            time.sleep(0.05)
        log.warning("scheduled jobs still running after %s s", timeout)
        return False

    # -- reconciliation -----------------------------------------------------------------------

    def _keep_interval_job(
        self, existing: dict, wanted: set, job_id: str, func: str, name: str, seconds: float
    ) -> None:
        """Add (or re-time) an interval job, first run now; leave it alone when unchanged."""
        wanted.add(job_id)
        trigger = IntervalTrigger(seconds=seconds, timezone=UTC)
        job = existing.get(job_id)
        if job is None or repr(job.trigger) != repr(trigger):
            self.scheduler.add_job(
                func,
                trigger=trigger,
                id=job_id,
                name=name,
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )

    def reconcile(self, now: datetime | None = None) -> None:
        """Make the job store match the rows (call within an app context)."""
        now = now or utcnow()
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        wanted: set[str] = set()
        in_flight = self._in_flight_ids()

        due_digests = db.session.execute(
            select(Digest.id, Digest.send_at).where(
                Digest.status == DigestStatus.SCHEDULED, Digest.paused.is_(False)
            )
        ).all()
        missed_before = now - timedelta(seconds=self.grace)
        for digest_id, send_at in due_digests:
            job_id = digest_job_id(digest_id)
            wanted.add(job_id)
            if job_id in in_flight:
                continue
            job = existing.get(job_id)
            if job is not None and getattr(job.trigger, "run_date", None) == _aware(send_at):
                continue
            if job is None and send_at < missed_before:
                # Its time passed beyond the grace period with no job to run it.
                mark_missed(digest_id, now)
                db.session.commit()
                wanted.discard(job_id)
                log.warning("digest %s missed (due %s)", digest_id, send_at)
                continue
            self.scheduler.add_job(
                jobs.FIRE_DIGEST,
                trigger=DateTrigger(run_date=_aware(send_at)),
                args=[digest_id],
                id=job_id,
                name=f"digest {digest_id}",
                replace_existing=True,
            )

        schedules = db.session.scalars(
            select(DigestSchedule).where(DigestSchedule.status == ScheduleStatus.ACTIVE)
        ).all()
        for schedule in schedules:
            job_id = schedule_job_id(schedule.id)
            try:
                trigger = schedule_trigger(schedule)
            except (ValueError, LookupError) as exc:
                log.error("schedule %s has a bad cron or zone: %s", schedule.id, exc)
                continue
            wanted.add(job_id)
            job = existing.get(job_id)
            if job is not None and repr(job.trigger) == repr(trigger):
                continue
            self.scheduler.add_job(
                jobs.FIRE_SCHEDULE,
                trigger=trigger,
                args=[schedule.id],
                id=job_id,
                name=f"schedule {schedule.id}",
                replace_existing=True,
            )

        feed_url = self.app.config.get("FEED_POLL_URL")
        if feed_url:
            minutes = max(1, int(self.app.config.get("FEED_POLL_MINUTES") or 30))
            self._keep_interval_job(
                existing, wanted, FEED_POLL_JOB, jobs.POLL_FEED, "feed poll", minutes * 60
            )

        if self.app.config.get("BOUNCE_MAILBOX_URL"):
            # Feedback loop (issue 12): the bounce mailbox, polled by the scheduler's holder.
            self._keep_interval_job(
                existing,
                wanted,
                BOUNCE_POLL_JOB,
                jobs.POLL_BOUNCES,
                "bounce mailbox poll",
                BOUNCE_MAILBOX_POLL_SECONDS,
            )

        for job_id in set(existing) - wanted:
            if job_id in in_flight:
                continue
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id)
        db.session.rollback()  # end the read transaction; nothing else to write
