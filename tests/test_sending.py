"""Sending digests: retries, failures, bounces, departures mid-send, crashes, outages, and
several workers sharing one digest — all counted at a real SMTP server (the rate cap:
test_send_rate)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.config import HARD_BOUNCES_BEFORE_BOUNCED
from newsletter.delivery.digests import claim_deliveries, run_digest
from newsletter.domain.digests import create_digest
from newsletter.domain.subscriptions import unsubscribe
from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.support.digests import (
    WorkerProcess,
    add_release,
    add_subscribers,
    digest_row,
    recipients_count,
)
from tests.support.sending import (
    digest_to,
    sent_in_summary,
    start_digest,
)


def deliveries() -> dict[str, Delivery]:
    db.session.expire_all()
    rows = db.session.execute(
        select(Subscriber.email, Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    ).all()
    return {email: delivery for email, delivery in rows}


def test_fan_out_is_one_row_per_confirmed_subscriber_of_the_language(app):
    with app.app_context():
        add_subscribers(25, language="en")
        add_subscribers(5, language="fr")
        add_subscribers(3, language="en", status=SubscriberStatus.PENDING)
        add_release(language="en")
        digest_id = start_digest("en")
        digest = digest_row(digest_id)
        assert digest.recipients == 25
        assert digest.status == DigestStatus.SENDING
        assert db.session.scalar(select(func.count(Delivery.id))) == 25
        assert (
            db.session.scalar(
                select(func.count(Delivery.id)).where(Delivery.status == DeliveryStatus.QUEUED)
            )
            == 25
        )


def test_temporary_failures_are_retried_with_backoff(app, mailbox, smtp_sink, run_worker):
    app.config["DELIVERY_RETRY_SECONDS"] = 60
    with app.app_context():
        _, digest_id = digest_to(2, prefix="reader")
    smtp_sink.rcpt_answers["reader-1@example.org"] = "451 4.7.1 Try again later"
    run_worker()
    assert [m.to for m in mailbox.wait_for(1)] == ["reader-0@example.org"]
    with app.app_context():
        deferred = deliveries()["reader-1@example.org"]
        assert deferred.status == DeliveryStatus.QUEUED
        assert deferred.attempts == 1 and deferred.smtp_code == 451
        assert "Try again later" in deferred.smtp_response
        # Backed off: about a minute away, so a worker pass now leaves it alone.
        assert deferred.next_attempt_at > utcnow() + timedelta(seconds=50)
        assert digest_row(digest_id).status == DigestStatus.SENDING
    run_worker()
    assert len(mailbox.messages) == 1

    smtp_sink.rcpt_answers.clear()
    with app.app_context():
        db.session.execute(update(Delivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    run_worker()
    assert sorted(m.to for m in mailbox.wait_for(2)) == [
        "reader-0@example.org",
        "reader-1@example.org",
    ]
    with app.app_context():
        retried = deliveries()["reader-1@example.org"]
        assert (retried.status, retried.attempts, retried.smtp_code) == (
            DeliveryStatus.SENT,
            2,
            250,
        )
        digest = digest_row(digest_id)
        assert (digest.status, digest.sent, digest.failed) == (DigestStatus.SENT, 2, 0)


def test_temporary_failures_give_up_after_the_last_try(app, mailbox, smtp_sink, run_worker):
    from newsletter.config import DELIVERY_MAX_ATTEMPTS

    app.config["DELIVERY_RETRY_SECONDS"] = 0
    with app.app_context():
        _, digest_id = digest_to(1, prefix="full")
    smtp_sink.rcpt_answers["full-0@example.org"] = "452 4.2.2 Mailbox full"
    for _ in range(DELIVERY_MAX_ATTEMPTS):
        run_worker()
    with app.app_context():
        row = deliveries()["full-0@example.org"]
        assert (row.status, row.attempts) == (DeliveryStatus.FAILED, DELIVERY_MAX_ATTEMPTS)
        digest = digest_row(digest_id)
        assert digest.status == DigestStatus.FAILED
        assert digest.failure_reason == "every delivery failed"
    assert mailbox.messages == []


def test_hard_bounces_are_recorded_and_mark_the_address_bounced(
    app, mailbox, smtp_sink, run_worker
):
    with app.app_context():
        add_subscribers(1, language="en", prefix="gone")
        add_subscribers(1, language="en", prefix="fine")
    smtp_sink.rcpt_answers["gone-0@example.org"] = "550 5.1.1 User unknown"
    for round_number in range(1, HARD_BOUNCES_BEFORE_BOUNCED + 2):
        with app.app_context():
            add_release(language="en", title=f"News {round_number}", published_at=utcnow())
            digest_id = start_digest()
        run_worker()
        with app.app_context():
            row = deliveries()
            failed = [d for email, d in row.items() if email == "gone-0@example.org"]
            subscriber = db.session.scalar(
                select(Subscriber).where(Subscriber.email == "gone-0@example.org")
            )
            if round_number <= HARD_BOUNCES_BEFORE_BOUNCED:
                assert failed and failed[0].status == DeliveryStatus.FAILED
                assert failed[0].smtp_code == 550
                assert "User unknown" in failed[0].smtp_response
                assert subscriber.hard_bounces == round_number
            digest = digest_row(digest_id)
            assert digest.sent == 1
    with app.app_context():
        subscriber = db.session.scalar(
            select(Subscriber).where(Subscriber.email == "gone-0@example.org")
        )
        assert subscriber.status == SubscriberStatus.BOUNCED
        assert subscriber.bounced_at is not None
        # The last digest went out after it bounced: no delivery for it at all.
        assert digest_row(digest_id).recipients == 1
    assert all(m.to == "fine-0@example.org" for m in mailbox.messages)


def test_a_delivered_message_clears_earlier_hard_bounces(app, mailbox, smtp_sink, run_worker):
    with app.app_context():
        add_subscribers(1, language="en", prefix="flaky")
        add_release(language="en", title="One", published_at=utcnow())
        start_digest()
    smtp_sink.rcpt_answers["flaky-0@example.org"] = "550 5.1.1 User unknown"
    run_worker()
    smtp_sink.rcpt_answers.clear()
    with app.app_context():
        assert db.session.scalar(select(Subscriber.hard_bounces)) == 1
        add_release(language="en", title="Two", published_at=utcnow())
        start_digest()
    run_worker()
    mailbox.wait_for(1)
    with app.app_context():
        db.session.expire_all()
        assert db.session.scalar(select(Subscriber.hard_bounces)) == 0


def test_someone_who_leaves_while_a_digest_goes_out_gets_nothing_more(app, mailbox, run_worker):
    with app.app_context():
        _, digest_id = digest_to(3, prefix="reader")
        leaver = db.session.scalar(
            select(Subscriber).where(Subscriber.email == "reader-1@example.org")
        )
        unsubscribe(leaver, method="link")
        db.session.commit()
    run_worker()
    assert sorted(m.to for m in mailbox.wait_for(2)) == [
        "reader-0@example.org",
        "reader-2@example.org",
    ]
    time.sleep(0.2)
    assert len(mailbox.messages) == 2
    with app.app_context():
        row = deliveries()["reader-1@example.org"]
        assert row.status == DeliveryStatus.CANCELLED
        digest = digest_row(digest_id)
        assert (digest.status, digest.recipients, digest.sent) == (DigestStatus.SENT, 3, 2)


def test_a_worker_that_dies_mid_batch_leaves_nothing_unsent(app, mailbox, run_worker):
    app.config["DELIVERY_LEASE_SECONDS"] = 60
    with app.app_context():
        _, digest_id = digest_to(5)
        # A worker claims three and dies before sending: they are held by its lease.
        claimed = claim_deliveries(3, lease=timedelta(seconds=60))
        assert len(claimed) == 3
    run_worker()
    assert len(mailbox.wait_for(2)) == 2
    with app.app_context():
        assert digest_row(digest_id).status == DigestStatus.SENDING
        # The lease lapses: the deliveries go back to the queue and out.
        db.session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.SENDING)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    run_worker()
    messages = mailbox.wait_for(5)
    assert len(messages) == 5
    assert max(recipients_count(messages).values()) == 1
    with app.app_context():
        digest = digest_row(digest_id)
        assert (digest.status, digest.sent) == (DigestStatus.SENT, 5)


def test_an_unreachable_server_puts_the_batch_back_without_counting_a_try(
    app, mailbox, smtp_sink, run_worker
):
    with app.app_context():
        _, digest_id = digest_to(4)
    smtp_sink.stop()
    try:
        summary = run_worker()
    finally:
        smtp_sink.start()
    assert summary.extra["digest messages sent"] == 0
    with app.app_context():
        rows = list(deliveries().values())
        assert {row.status for row in rows} == {DeliveryStatus.QUEUED}
        assert {row.attempts for row in rows} == {0}
        assert all(row.next_attempt_at > utcnow() for row in rows)
        db.session.execute(update(Delivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    run_worker()
    assert len(mailbox.wait_for(4)) == 4
    with app.app_context():
        assert digest_row(digest_id).status == DigestStatus.SENT


def test_a_paused_digest_waits_and_resumes(app, mailbox, run_worker):
    with app.app_context():
        _, digest_id = digest_to(3)
        digest_row(digest_id).paused = True
        db.session.commit()
    run_worker()
    assert mailbox.messages == []
    with app.app_context():
        digest_row(digest_id).paused = False
        db.session.commit()
    run_worker()
    assert len(mailbox.wait_for(3)) == 3


@pytest.mark.slow
def test_two_workers_share_one_digest_with_no_duplicate_and_no_gap(
    app, mailbox, smtp_sink, database_url, is_postgres, tmp_path
):
    """Several thousand recipients, two worker processes at once, counted at the server."""
    size = 3000 if is_postgres else 1000
    with app.app_context():
        add_subscribers(50, language="fr", status=SubscriberStatus.UNSUBSCRIBED)
        expected, digest_id = digest_to(size, "fr")
    env = {"NEWSLETTER_SEND_BATCH_SIZE": "50", "NEWSLETTER_SEND_MAX_RATE": str(size // 4)}
    workers = [
        WorkerProcess(
            database_url=database_url,
            smtp_port=smtp_sink.port,
            name=f"sender-{index}",
            log_dir=tmp_path,
            until_idle=True,
            env=env,
        )
        for index in range(2)
    ]
    try:
        codes = [worker.wait(timeout=90) for worker in workers]
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
    assert codes == [0, 0], [worker.log()[-2000:] for worker in workers]
    messages = mailbox.wait_for(size, timeout=30)
    time.sleep(0.3)
    counts = recipients_count(mailbox.messages)
    assert len(mailbox.messages) == size
    assert max(counts.values()) == 1, "a subscriber got the digest twice"
    assert set(counts) == {address.casefold() for address in expected}
    # Both worked: each sent a real share (a twentieth at least; one may start a little
    # late), and together exactly everyone.
    sent_by_worker = [sent_in_summary(worker) for worker in workers]
    assert sum(sent_by_worker) == size
    assert min(sent_by_worker) >= size // 20, f"one worker did almost all: {sent_by_worker}"
    with app.app_context():
        digest = digest_row(digest_id)
        assert (digest.status, digest.recipients, digest.sent, digest.failed) == (
            DigestStatus.SENT,
            size,
            size,
            0,
        )
    assert len({m.header("Message-ID") for m in messages}) == size


class _PipeliningHandler:
    """An aiosmtpd handler that offers PIPELINING and refuses some recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.answers = {
            "gone@example.org": "550 5.1.1 User unknown",
            "busy@example.org": "451 Later",
        }

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.answers:
            return self.answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 queued"


@pytest.mark.parametrize("pipelining", [True, False])
def test_bulk_transport_pipelines_and_reports_refusals(pipelining):
    from aiosmtpd.controller import Controller

    from newsletter.mail.bulk import BulkSmtpTransport
    from newsletter.mail.transport import DeliveryError, SmtpSettings
    from tests.conftest import free_port

    handler = _PipeliningHandler()
    if not pipelining:
        handler.handle_EHLO = None  # type: ignore[assignment]
        del handler.handle_EHLO
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    transport = BulkSmtpTransport(SmtpSettings(host="127.0.0.1", port=port, timeout=5))
    message = b"Subject: x\r\n\r\n.leading dot\r\nline\r\n..two dots\r\n"
    try:
        assert transport.send("news@example.org", "a@example.org", message).code == 250
        with pytest.raises(DeliveryError) as permanent:
            transport.send("news@example.org", "gone@example.org", message)
        assert (permanent.value.code, permanent.value.temporary) == (550, False)
        with pytest.raises(DeliveryError) as temporary:
            transport.send("news@example.org", "busy@example.org", message)
        assert (temporary.value.code, temporary.value.temporary) == (451, True)
        # The connection is still usable after refusals; a message with bare LFs goes the
        # ordinary smtplib way.
        assert transport.send("news@example.org", "b@example.org", message).code == 250
        assert transport.send("news@example.org", "c@example.org", b"Subject: y\n\nbare\n").code
        if pipelining:
            assert transport._connection.has_extn("pipelining")
    finally:
        transport.close()
        controller.stop()
    assert [rcpts for rcpts, _ in handler.received] == [
        ["a@example.org"],
        ["b@example.org"],
        ["c@example.org"],
    ]
    assert handler.received[0][1] == message
    assert handler.received[2][1].startswith(b"Subject: y\n\nbare\n")


def test_fan_out_is_a_single_statement_whatever_the_list_size(app):
    """No per-subscriber statement: the SQL a run issues does not grow with the list."""
    from sqlalchemy import event

    def statements_for(size: int, language: str) -> list[str]:
        with app.app_context():
            add_subscribers(size, language=language)
            add_release(language=language)
            digest = create_digest({"language": language})
            db.session.commit()
            seen: list[str] = []

            def record(conn, cursor, statement, parameters, context, executemany):
                seen.append(statement)

            event.listen(db.engine, "before_cursor_execute", record)
            try:
                run_digest(digest.id)
            finally:
                event.remove(db.engine, "before_cursor_execute", record)
            return seen

    small, large = statements_for(3, "en"), statements_for(600, "fr")
    inserts = [s for s in large if s.lstrip().upper().startswith("INSERT INTO DELIVERIES")]
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    assert len(large) == len(small)


@pytest.mark.postgres_only
def test_claims_skip_rows_another_worker_holds_on_postgresql(app, is_postgres):
    if not is_postgres:
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite serialises writers instead")
    with app.app_context():
        digest_to(10)
        # Another worker's claim transaction, still open, holds four rows.
        other = db.engine.connect()
        other_transaction = other.begin()
        held = set(
            other.scalars(
                select(Delivery.id).order_by(Delivery.id).limit(4).with_for_update()
            ).all()
        )
        try:
            started = time.monotonic()
            claimed = claim_deliveries(100, lease=timedelta(seconds=60))
            assert time.monotonic() - started < 2, "the claim waited for the other worker"
            assert len(claimed) == 6
            assert not held & {delivery.id for delivery in claimed}
        finally:
            other_transaction.rollback()
            other.close()
        assert len(claim_deliveries(100, lease=timedelta(seconds=60))) == 4


@pytest.mark.slow
def test_a_sender_killed_mid_digest_loses_no_one(app, mailbox, smtp_sink, database_url, tmp_path):
    """SIGKILL mid-send: its claimed batch is re-sent after the lease; nobody is skipped."""
    size, batch = 150, 10
    with app.app_context():
        expected, digest_id = digest_to(size)
    env = {
        "NEWSLETTER_SEND_BATCH_SIZE": str(batch),
        "NEWSLETTER_SEND_MAX_RATE": "60",
        "NEWSLETTER_SEND_CONNECTIONS": "1",
        "NEWSLETTER_DELIVERY_LEASE_SECONDS": "2",
    }
    common = {"database_url": database_url, "smtp_port": smtp_sink.port, "log_dir": tmp_path}
    doomed = WorkerProcess(name="doomed", env=env, **common)
    try:
        mailbox.wait_for(25, timeout=30)
    finally:
        doomed.kill()
    received_before = len(mailbox.messages)
    assert received_before < size
    survivor = WorkerProcess(name="survivor", until_idle=True, env=env, **common)
    assert survivor.wait(timeout=60) == 0, survivor.log()[-2000:]
    with app.app_context():
        digest = digest_row(digest_id)
        if digest.status == DigestStatus.SENDING:
            # The dead worker's lease had not lapsed when the survivor looked: once more.
            time.sleep(2.5)
            again = WorkerProcess(name="survivor-2", until_idle=True, env=env, **common)
            assert again.wait(timeout=60) == 0
            digest = digest_row(digest_id)
        assert (digest.status, digest.sent) == (DigestStatus.SENT, size)
    counts = recipients_count(mailbox.messages)
    assert set(counts) == {address.casefold() for address in expected}  # zero missing
    # At most the one batch the dead worker had claimed but not recorded goes twice.
    assert sum(counts.values()) - size <= batch
