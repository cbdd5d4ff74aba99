"""Scheduling: the lease that elects one scheduler, APScheduler jobs from database rows, and
real worker processes (``python -m flask --app newsletter worker``) firing digests on time —
across restarts, recurring periods, and the death of the worker holding the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from newsletter.domain.digests import create_digest
from newsletter.domain.schedules import create_schedule
from newsletter.extensions import db
from newsletter.models import (
    Digest,
    DigestSchedule,
    DigestStatus,
    SchedulerLease,
    ScheduleStatus,
    SubscriberStatus,
    utcnow,
)
from newsletter.scheduling.jobs import latest_fire_time
from newsletter.scheduling.leadership import release_lease, try_acquire_lease
from newsletter.scheduling.scheduler import DigestScheduler, digest_job_id, schedule_job_id
from tests.support.digests import (
    add_release,
    add_subscribers,
    digest_row,
    lease_holder,
    recipients_count,
    wait_until,
)


@pytest.fixture
def start_worker(start_worker):
    """The worker processes of ``tests/conftest.py``, each with a 5 s delivery lease."""

    def start(name: str):
        return start_worker(name, env={"NEWSLETTER_DELIVERY_LEASE_SECONDS": "5"})

    return start


def schedule_digest(language: str, in_seconds: float, **values) -> tuple[int, datetime]:
    send_at = utcnow() + timedelta(seconds=in_seconds)
    digest = create_digest({"language": language, "send_at": send_at.isoformat(), **values})
    db.session.commit()
    return digest.id, digest.send_at


def stored_job_ids() -> set[str]:
    db.session.rollback()
    ids = set(db.session.scalars(text("SELECT id FROM apscheduler_jobs")))
    db.session.rollback()
    return ids


# ---------------------------------------------------------------------------------------------
# The lease


def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(app):
    ttl = timedelta(seconds=30)
    with app.app_context():
        assert try_acquire_lease("worker-a", ttl)
        assert not try_acquire_lease("worker-b", ttl)
        assert try_acquire_lease("worker-a", ttl)  # renewal
        assert lease_holder() == "worker-a"
        db.session.execute(update(SchedulerLease).values(expires_at=utcnow() - timedelta(1)))
        db.session.commit()
        assert try_acquire_lease("worker-b", ttl)
        assert not try_acquire_lease("worker-a", ttl)
        assert lease_holder() == "worker-b"
        release_lease("worker-a")  # not the holder: nothing happens
        assert lease_holder() == "worker-b"
        release_lease("worker-b")
        assert lease_holder() is None
        assert try_acquire_lease("worker-a", ttl)


# ---------------------------------------------------------------------------------------------
# Rows → jobs


def test_rows_become_jobs_and_follow_pause_resume_cancel(app):
    with app.app_context():
        digest_id, send_at = schedule_digest("fr", 3600)
        schedule = create_schedule({"language": "fr", "every": "day", "at": "08:00"})
        db.session.commit()
        scheduler = DigestScheduler(app)
        scheduler.scheduler.start(paused=True)
        try:
            scheduler.reconcile()
            job = scheduler.scheduler.get_job(digest_job_id(digest_id))
            assert job.trigger.run_date == send_at.replace(tzinfo=UTC)
            assert job.misfire_grace_time == app.config["DIGEST_MISFIRE_GRACE_SECONDS"]
            cron = scheduler.scheduler.get_job(schedule_job_id(schedule.id))
            assert str(cron.trigger.timezone) == "Europe/Brussels"
            assert cron.next_run_time.astimezone(cron.trigger.timezone).hour == 8
            assert stored_job_ids() == {digest_job_id(digest_id), schedule_job_id(schedule.id)}

            digest_row(digest_id).paused = True
            db.session.get(DigestSchedule, schedule.id).status = ScheduleStatus.PAUSED
            db.session.commit()
            scheduler.reconcile()
            assert stored_job_ids() == set()

            digest_row(digest_id).paused = False
            schedule = db.session.get(DigestSchedule, schedule.id)
            schedule.status = ScheduleStatus.ACTIVE
            schedule.cron = "30 9 * * mon"
            db.session.commit()
            scheduler.reconcile()
            cron = scheduler.scheduler.get_job(schedule_job_id(schedule.id))
            assert cron.next_run_time.astimezone(cron.trigger.timezone).weekday() == 0
            assert len(stored_job_ids()) == 2

            digest_row(digest_id).status = DigestStatus.FAILED
            db.session.get(DigestSchedule, schedule.id).status = ScheduleStatus.CANCELLED
            db.session.commit()
            scheduler.reconcile()
            assert stored_job_ids() == set()
        finally:
            scheduler.shutdown()


def test_a_digest_missed_beyond_the_grace_period_is_recorded_missed(app, mailbox, run_worker):
    app.config["DIGEST_MISFIRE_GRACE_SECONDS"] = 600
    with app.app_context():
        add_subscribers(2, language="fr")
        add_release(language="fr", published_at=utcnow() - timedelta(hours=3))
        late = Digest(language="fr", send_at=utcnow() - timedelta(minutes=5))
        missed = Digest(language="fr", send_at=utcnow() - timedelta(hours=2))
        db.session.add_all([late, missed])
        db.session.commit()
        late_id, missed_id = late.id, missed.id
    run_worker()
    assert len(mailbox.wait_for(2)) == 2  # within the grace period: sent once, on start
    with app.app_context():
        assert digest_row(late_id).status == DigestStatus.SENT
        row = digest_row(missed_id)
        assert (row.status, row.failure_reason) == (DigestStatus.FAILED, "missed")
    run_worker()
    assert len(mailbox.messages) == 2


def test_a_stored_job_missed_beyond_grace_is_recorded_when_a_scheduler_starts(app):
    """The job was in the store but no worker ran at its time (nor within the grace)."""
    app.config["DIGEST_MISFIRE_GRACE_SECONDS"] = 60
    with app.app_context():
        digest_id, _ = schedule_digest("fr", 3600)
        # A period 12 hours off: no real period falls in the three hours this test rewinds,
        # whatever time of day the suite runs.
        hour = (datetime.now(UTC) - timedelta(hours=12)).hour
        schedule = create_schedule({"language": "fr", "cron": f"0 {hour} * * *", "timezone": "UTC"})
        db.session.commit()
        schedule_id = schedule.id
    first = DigestScheduler(app)
    first.scheduler.start(paused=True)
    with app.app_context():
        first.reconcile()
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    first.scheduler.modify_job(digest_job_id(digest_id), next_run_time=long_ago)
    first.scheduler.modify_job(schedule_job_id(schedule_id), next_run_time=long_ago)
    first.shutdown()
    with app.app_context():
        db.session.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(send_at=long_ago.replace(tzinfo=None))
        )
        db.session.commit()

    second = DigestScheduler(app)
    try:
        second.start()
        assert second.wait_for_due_jobs(timeout=20)
    finally:
        second.shutdown()
    with app.app_context():
        row = digest_row(digest_id)
        assert (row.status, row.failure_reason) == (DigestStatus.FAILED, "missed")
        run = db.session.scalar(select(Digest).where(Digest.schedule_id == schedule_id))
        assert (run.status, run.failure_reason) == (DigestStatus.FAILED, "missed")
        assert run.send_at == long_ago.replace(tzinfo=None, microsecond=0)
        # The recurring job lives on, due at its next period.
        assert schedule_job_id(schedule_id) in stored_job_ids()


def test_latest_fire_time_names_the_period_being_run(app):
    schedule = DigestSchedule(language="fr", cron="0 8 * * *", timezone="Europe/Brussels")
    # 08:00 in Brussels in winter is 07:00 UTC.
    now = datetime(2025, 1, 15, 7, 0, 0, 300000)
    assert latest_fire_time(schedule, now, timedelta(hours=1)) == datetime(2025, 1, 15, 7, 0)
    late = datetime(2025, 1, 15, 7, 40)
    assert latest_fire_time(schedule, late, timedelta(hours=1)) == datetime(2025, 1, 15, 7, 0)
    every_three = DigestSchedule(language="fr", cron="*/3 * * * * *", timezone="UTC")
    assert latest_fire_time(every_three, datetime(2025, 1, 15, 7, 0, 7), timedelta(hours=1)) == (
        datetime(2025, 1, 15, 7, 0, 6)
    )


def test_a_recurring_period_is_created_once_however_often_it_fires(app):
    from newsletter.scheduling.jobs import start_schedule_period

    with app.app_context():
        schedule = create_schedule({"language": "fr", "cron": "* * * * *"})
        db.session.commit()
        now = utcnow().replace(second=5)
        start_schedule_period(schedule.id, now)
        assert start_schedule_period(schedule.id, now + timedelta(seconds=1)) is None
        assert db.session.scalar(select(func.count(Digest.id))) == 1


# ---------------------------------------------------------------------------------------------
# Real worker processes


@pytest.mark.slow
def test_a_scheduled_digest_fires_at_its_time_in_a_running_worker(app, mailbox, start_worker):
    with app.app_context():
        confirmed = add_subscribers(4, language="en")
        add_subscribers(2, language="en", status=SubscriberStatus.PENDING)
        add_subscribers(1, language="en", status=SubscriberStatus.UNSUBSCRIBED)
        add_subscribers(1, language="en", status=SubscriberStatus.BOUNCED)
        add_subscribers(3, language="fr")
        add_release(language="en", title="On time")
        digest_id, send_at = schedule_digest("en", 4)
    start_worker("solo")
    messages = mailbox.wait_for(4, timeout=40)
    with app.app_context():
        digest = wait_until(
            lambda: (row := digest_row(digest_id)).status == DigestStatus.SENT and row,
            message="digest sent",
        )
        assert send_at <= digest.started_at <= send_at + timedelta(seconds=10)
    assert sorted(m.to for m in mailbox.messages) == sorted(confirmed)
    assert all("On time" in m.text and m.header("List-Unsubscribe") for m in messages)


@pytest.mark.slow
def test_a_worker_restarted_before_the_due_time_still_sends(app, mailbox, start_worker):
    with app.app_context():
        add_subscribers(3, language="fr")
        add_release(language="fr")
        digest_id, _ = schedule_digest("fr", 8)
    first = start_worker("before-restart")
    with app.app_context():
        wait_until(lambda: digest_job_id(digest_id) in stored_job_ids(), message="job stored")
    assert first.stop() == 0
    assert mailbox.messages == []
    with app.app_context():
        assert digest_row(digest_id).status == DigestStatus.SCHEDULED
        assert digest_job_id(digest_id) in stored_job_ids()  # the restart loses no job
    start_worker("after-restart")
    assert len(mailbox.wait_for(3, timeout=40)) == 3
    with app.app_context():
        wait_until(lambda: digest_row(digest_id).status == DigestStatus.SENT)


@pytest.mark.slow
def test_a_recurring_schedule_fires_on_consecutive_periods(app, mailbox, start_worker):
    with app.app_context():
        add_subscribers(2, language="fr")
        add_release(language="fr", title="First release")
        schedule = create_schedule({"language": "fr", "cron": "*/4 * * * * *", "timezone": "UTC"})
        db.session.commit()
        schedule_id = schedule.id

    def runs() -> list[Digest]:
        db.session.expire_all()
        rows = list(
            db.session.scalars(
                select(Digest).where(Digest.schedule_id == schedule_id).order_by(Digest.send_at)
            )
        )
        db.session.rollback()
        return rows

    start_worker("recurring")
    first = mailbox.wait_for(2, timeout=40)
    assert all("First release" in m.text for m in first)
    with app.app_context():
        add_release(language="fr", title="Second release", published_at=utcnow())
    messages = mailbox.wait_for(4, timeout=30)
    assert all("Second release" in m.text for m in messages[2:])
    with app.app_context():
        rows = wait_until(lambda: len(r := runs()) >= 3 and r, timeout=20)
        times = [row.send_at for row in rows]
        assert len(times) == len(set(times))
        assert all(t.second % 4 == 0 for t in times)
        gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}
        assert 4.0 in gaps  # consecutive periods, each run exactly once
        statuses = [row.status for row in rows]
        assert statuses.count(DigestStatus.SENT) == 2, statuses
        # The newest run may be caught between its creation and its start.
        in_progress = {DigestStatus.SCHEDULED, DigestStatus.SENDING}
        assert set(statuses) <= {DigestStatus.SENT, DigestStatus.SKIPPED} | in_progress, [
            (row.status, row.failure_reason) for row in rows
        ]
    assert max(recipients_count(mailbox.messages).values()) == 2


@pytest.mark.slow
def test_two_workers_fire_once_and_survive_the_death_of_the_scheduler_holder(
    app, mailbox, start_worker
):
    with app.app_context():
        add_subscribers(30, language="fr", prefix="fr-reader")
        add_subscribers(20, language="en", prefix="en-reader")
        add_release(language="fr")
        add_release(language="en")
    workers = {name: start_worker(name) for name in ("alpha", "beta")}
    with app.app_context():
        holder = wait_until(lambda: lease_holder(), timeout=30, message="a scheduler leader")
        first_id, _ = schedule_digest("fr", 3)
    assert len(mailbox.wait_for(30, timeout=40)) == 30
    with app.app_context():
        wait_until(lambda: digest_row(first_id).status == DigestStatus.SENT)
        second_id, _ = schedule_digest("en", 6)
        wait_until(lambda: digest_job_id(second_id) in stored_job_ids(), message="job stored")

    workers[holder].kill()  # SIGKILL: no clean-up, the lease just stops being renewed
    survivor = "beta" if holder == "alpha" else "alpha"
    messages = mailbox.wait_for(50, timeout=60)
    with app.app_context():
        wait_until(lambda: digest_row(second_id).status == DigestStatus.SENT, timeout=30)
        assert wait_until(lambda: lease_holder() == survivor, timeout=10)
    counts = recipients_count(mailbox.messages)
    assert len(mailbox.messages) == 50 and max(counts.values()) == 1
    assert sum(1 for m in messages if m.header("Content-Language") == "en") == 20


def test_stopping_the_scheduler_leaves_the_apps_engine_alone(app):
    """The job store shares the app's engine. APScheduler's store disposes its engine on
    shutdown, which orphaned connections other threads (a test's or a request's session) held:
    their old pool was collected with them still open ("connection deleted while still open"
    on PostgreSQL, seen in test_outgoing_webhooks). The app owns its engine; the store must not
    dispose it."""
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # a connection checked out while it stops
        pool = db.engine.pool
        scheduler = DigestScheduler(app)
        scheduler.start()
        scheduler.shutdown(wait=True)
        assert db.engine.pool is pool
        db.session.remove()
        assert pool.checkedout() == 0
