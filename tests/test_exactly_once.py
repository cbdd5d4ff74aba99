"""Issue 10: delivery stays exactly-once under rate-capped relays, crashes, outages and
overlapping digests. Each test here failed on the code before the fix (see the commit)."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from newsletter.config import DELIVERY_MAX_ATTEMPTS, OUTBOX_MAX_ATTEMPTS
from newsletter.delivery.delivery_queue import claim_deliveries, release_expired_leases
from newsletter.delivery.digest_runs import run_digest
from newsletter.delivery.outbox import (
    RelayUnreachable,
    claim_outbox_batch,
    deliver_outbox_batch,
    queue_message,
)
from newsletter.domain.digests import finish_digest, pause_digest, resume_digest
from newsletter.extensions import db
from newsletter.mail.transport import open_transport
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    DigestStatus,
    OutboxMessage,
    OutboxStatus,
    SchedulerLease,
    utcnow,
)
from tests.conftest import free_port
from tests.support.digests import WorkerProcess, add_release, add_subscribers, digest_row
from tests.support.fault_counts import tally
from tests.support.sending import digest_to, new_digest, wait_sent


def carried(digest_id: int) -> set[str]:
    return {release.title for release in digest_row(digest_id).releases}


def due_digest(readers: int) -> int:
    """``readers`` English subscribers, a release, and a digest to them due now, not started."""
    add_subscribers(readers, language="en")
    add_release(language="en")
    return new_digest()


def assert_the_worker_sends_it(app, mailbox, run_worker, digest_id: int) -> None:
    """One worker run delivers the digest to both its readers and marks it sent."""
    run_worker()
    assert len(mailbox.wait_for(2)) == 2
    with app.app_context():
        assert digest_row(digest_id).status == DigestStatus.SENT


# -- a rate-capped relay with a lease shorter than a batch ------------------------------------


@pytest.mark.slow
def test_a_throttled_relay_with_a_short_lease_sends_each_message_once(
    app, mailbox, smtp_sink, database_url, tmp_path
):
    """The long-running worker at 10 msg/s with a 2 s lease: a batch outlives its lease."""
    with app.app_context():
        expected, digest_id = digest_to(60)
    env = {"NEWSLETTER_SEND_MAX_RATE": "10", "NEWSLETTER_DELIVERY_LEASE_SECONDS": "2"}
    worker = WorkerProcess(
        name="throttled",
        env=env,
        database_url=database_url,
        smtp_port=smtp_sink.port,
        log_dir=tmp_path,
    )
    try:
        wait_sent(app, digest_id, timeout=60)
        time.sleep(1)  # a late duplicate would land now
    finally:
        worker.stop()
    lost, duplicated = tally("throttled relay (10 msg/s, 2 s lease)", expected, mailbox.messages)
    assert (lost, duplicated) == (0, 0)
    with app.app_context():
        assert digest_row(digest_id).sent == len(expected)


# -- digest content once ----------------------------------------------------------------------


def test_two_overlapping_digests_of_one_language_never_carry_a_release_twice(app):
    with app.app_context():
        add_subscribers(2, language="en")
        add_release(language="en", title="Only once")
        first, second = new_digest(), new_digest()
        assert run_digest(first).result == "sending"  # still sending when the second starts
        outcome = run_digest(second)
        assert carried(first) == {"Only once"}
        assert carried(second) == set()
        assert outcome.result == "skipped"


def test_a_release_arriving_late_with_an_older_date_goes_in_the_next_digest(app):
    with app.app_context():
        add_subscribers(1, language="en")
        add_release(language="en", title="On time")
        first = new_digest()
        run_digest(first)
        assert finish_digest(first, DigestStatus.SENT, utcnow())
        db.session.commit()
        # Imported after the first digest started, dated before it (feed poll, backdated entry).
        add_release(language="en", title="Late", published_at=utcnow() - timedelta(hours=3))
        second = new_digest()
        assert run_digest(second).result == "sending"
        assert carried(second) == {"Late"}


def test_the_release_cap_carries_the_overflow_to_the_next_digest(app):
    from newsletter.config import DIGEST_MAX_RELEASES

    total = DIGEST_MAX_RELEASES + 5
    with app.app_context():
        add_subscribers(1, language="en")
        for index in range(total):
            add_release(
                language="en",
                title=f"R{index}",
                published_at=utcnow() - timedelta(minutes=10 + index),
            )
        first = new_digest()
        run_digest(first)
        assert finish_digest(first, DigestStatus.SENT, utcnow())
        db.session.commit()
        second = new_digest()
        run_digest(second)
        both = carried(first) | carried(second)
        assert len(carried(first)) == DIGEST_MAX_RELEASES
        assert len(carried(second)) == 5
        assert both == {f"R{index}" for index in range(total)}


def test_resuming_a_paused_one_off_digest_after_the_grace_period_still_sends(
    app, mailbox, run_worker
):
    with app.app_context():
        digest_id = due_digest(2)
        pause_digest(digest_row(digest_id))
        db.session.commit()
        grace = app.config["DIGEST_MISFIRE_GRACE_SECONDS"]
        digest_row(digest_id).send_at = utcnow() - timedelta(seconds=grace + 600)
        db.session.commit()
        resume_digest(digest_row(digest_id))
        db.session.commit()
    assert_the_worker_sends_it(app, mailbox, run_worker, digest_id)


# -- poison rows and outages ------------------------------------------------------------------


def test_a_delivery_whose_sender_keeps_dying_stops_at_the_last_try(app):
    with app.app_context():
        digest_id = due_digest(1)
        run_digest(digest_id)
        for _ in range(DELIVERY_MAX_ATTEMPTS + 2):
            claimed = claim_deliveries(10, lease=timedelta(seconds=60))
            if not claimed:
                break
            # The sender dies on it every time (SIGKILL, a crash in a library): the lease lapses.
            db.session.execute(update(Delivery).values(lease_expires_at=utcnow() - timedelta(1)))
            db.session.commit()
            release_expired_leases(utcnow())
        row = db.session.scalar(select(Delivery))
        assert row.status == DeliveryStatus.FAILED
        assert row.attempts == DELIVERY_MAX_ATTEMPTS


def test_an_outbox_message_whose_sender_keeps_dying_stops_at_the_last_try(app):
    with app.app_context():
        queue_message("test", "poison@example.org", b"Subject: x\r\n\r\nbody\r\n")
        db.session.commit()
        for _ in range(OUTBOX_MAX_ATTEMPTS + 2):
            claim_outbox_batch(10)
            db.session.execute(
                update(OutboxMessage).values(lease_expires_at=utcnow() - timedelta(1))
            )
            db.session.commit()
        claim_outbox_batch(10)
        row = db.session.scalar(select(OutboxMessage))
        assert row.status == OutboxStatus.FAILED
        assert row.attempts <= OUTBOX_MAX_ATTEMPTS


def test_an_unreachable_relay_costs_transactional_mail_no_try(app):
    with app.app_context():
        for index in range(3):
            queue_message("confirm", f"a{index}@example.org", b"Subject: x\r\n\r\nbody\r\n")
        db.session.commit()
        transport = open_transport(f"smtp://127.0.0.1:{free_port()}?timeout=2")
        try:
            for _ in range(OUTBOX_MAX_ATTEMPTS + 2):
                with contextlib.suppress(RelayUnreachable):
                    deliver_outbox_batch(transport)
                db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
                db.session.commit()
        finally:
            transport.close()
        rows = db.session.scalars(select(OutboxMessage)).all()
        assert {row.status for row in rows} == {OutboxStatus.QUEUED}
        assert {row.attempts for row in rows} == {0}


# -- leadership -------------------------------------------------------------------------------


def test_until_idle_within_a_dead_workers_lease_sends_the_due_digest(app, mailbox, run_worker):
    with app.app_context():
        digest_id = due_digest(2)
        # A worker was SIGKILLed a moment ago: its scheduler lease has not lapsed yet.
        db.session.add(
            SchedulerLease(
                name="digest-scheduler", holder="dead:1", expires_at=utcnow() + timedelta(60)
            )
        )
        db.session.commit()
    assert_the_worker_sends_it(app, mailbox, run_worker, digest_id)


def test_the_scheduler_lease_outlasts_a_sqlite_lock_wait(app):
    from newsletter.config import SQLITE_BUSY_TIMEOUT_SECONDS

    assert float(app.config["SCHEDULER_LEASE_SECONDS"]) > SQLITE_BUSY_TIMEOUT_SECONDS
