"""The outbox: requests queue, workers deliver; an SMTP outage delays mail, never loses it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.delivery.outbox import claim_outbox_batch, queue_email
from newsletter.extensions import db
from newsletter.mail.transport import SmtpSettings, parse_mail_url
from newsletter.models import OutboxMessage, OutboxStatus, utcnow

ROOT = Path(__file__).resolve().parent.parent


def queue_test_email(to: str = "someone@example.org", language: str = "en") -> int:
    message_id = queue_email(
        "test",
        to=to,
        template="subscription_confirm",
        language=language,
        confirm_url="https://news.example.org/subscribe/confirm/abc",
        name="",
    )
    db.session.commit()
    return message_id


def outbox_row(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def let_backoff_pass(message_id: int) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_smtp_outage_delays_mail_and_loses_nothing(app, smtp_sink, mailbox, run_worker):
    with app.app_context():
        message_id = queue_test_email()
    smtp_sink.stop()
    try:
        run_worker()
        with app.app_context():
            row = outbox_row(message_id)
            assert row.status == OutboxStatus.QUEUED
            assert row.attempts == 0  # an outage costs no try (issue 10)
            assert "unreachable" in row.last_error
            assert row.next_attempt_at > utcnow()  # backed off, not hammering the server
    finally:
        smtp_sink.start()
    run_worker()
    assert mailbox.messages == []  # still waiting for its retry time
    with app.app_context():
        let_backoff_pass(message_id)
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.to == "someone@example.org"
    with app.app_context():
        row = outbox_row(message_id)
        assert row.status == OutboxStatus.SENT
        assert row.sent_at is not None
    run_worker()
    assert len(mailbox.messages) == 1  # delivered once


def test_permanent_refusal_is_recorded_and_not_retried(app, smtp_sink, mailbox, run_worker):
    smtp_sink.rcpt_answers["gone@example.org"] = "550 5.1.1 No such user"
    with app.app_context():
        gone = queue_test_email("gone@example.org")
        fine = queue_test_email("fine@example.org")
    run_worker()
    assert [m.to for m in mailbox.wait_for(1)] == ["fine@example.org"]
    with app.app_context():
        row = outbox_row(gone)
        assert row.status == OutboxStatus.FAILED
        assert "550" in row.last_error
        assert outbox_row(fine).status == OutboxStatus.SENT


def test_temporary_refusal_is_retried_with_growing_backoff(app, smtp_sink, mailbox, run_worker):
    smtp_sink.rcpt_answers["busy@example.org"] = "451 4.7.1 Try again later"
    with app.app_context():
        busy = queue_test_email("busy@example.org")
    run_worker()
    with app.app_context():
        first = outbox_row(busy)
        assert first.status == OutboxStatus.QUEUED
        first_delay = first.next_attempt_at - utcnow()
        let_backoff_pass(busy)
    run_worker()
    with app.app_context():
        second = outbox_row(busy)
        assert second.attempts == 2
        assert second.next_attempt_at - utcnow() > first_delay
        let_backoff_pass(busy)
    smtp_sink.rcpt_answers.clear()
    run_worker()
    assert [m.to for m in mailbox.wait_for(1)] == ["busy@example.org"]


def test_message_stops_being_retried_after_the_maximum_attempts(app, smtp_sink, run_worker):
    from newsletter.config import OUTBOX_MAX_ATTEMPTS

    smtp_sink.rcpt_answers["busy@example.org"] = "451 4.7.1 Try again later"
    with app.app_context():
        busy = queue_test_email("busy@example.org")
    for _ in range(OUTBOX_MAX_ATTEMPTS):
        run_worker()
        with app.app_context():
            let_backoff_pass(busy)
    with app.app_context():
        row = outbox_row(busy)
        assert row.status == OutboxStatus.FAILED
        assert row.attempts == OUTBOX_MAX_ATTEMPTS


def test_message_claimed_by_a_dead_worker_is_sent_after_its_lease(app, mailbox, run_worker):
    with app.app_context():
        message_id = queue_test_email()
        [claimed] = claim_outbox_batch(10)  # this "worker" dies here
        assert claimed.id == message_id
        assert claim_outbox_batch(10) == []  # nobody else takes it while the lease runs
    run_worker()
    assert mailbox.messages == []
    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    run_worker()
    assert len(mailbox.wait_for(1)) == 1


def test_file_transport_writes_one_eml_per_message(make_app, tmp_path):
    from newsletter.scheduling.worker import Worker

    application = make_app(MAIL_URL=f"file://{tmp_path}/mail")
    with application.app_context():
        queue_test_email("a@example.org")
        queue_test_email("b@example.org")
    Worker(application).run(until_idle=True)
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    assert b"Subject: Confirm your subscription" in files[0].read_bytes()
    with application.app_context():
        assert {row.status for row in db.session.scalars(select(OutboxMessage))} == {"sent"}


@pytest.mark.parametrize(
    "url, expected",
    [
        ("smtp://mail.example.org:2525", SmtpSettings("mail.example.org", 2525)),
        (
            "smtp://u%40x:p%3Ass@mail.example.org:587?starttls=true",
            SmtpSettings("mail.example.org", 587, "u@x", "p:ss", starttls=True),
        ),
        ("smtps://mail.example.org", SmtpSettings("mail.example.org", 465, use_ssl=True)),
        ("file:///var/mail/out", Path("/var/mail/out")),
    ],
)
def test_mail_urls(url, expected):
    assert parse_mail_url(url) == expected


def test_unsupported_mail_url_is_refused():
    with pytest.raises(ValueError):
        parse_mail_url("http://mail.example.org")


def test_two_worker_processes_deliver_each_message_exactly_once(
    app, database_url, smtp_sink, mailbox
):
    with app.app_context():
        for index in range(120):
            queue_email(
                "test",
                to=f"r{index}@example.org",
                template="subscription_confirm",
                language="fr",
                confirm_url="https://news.example.org/x",
                name="",
            )
        db.session.commit()
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}",
        "NEWSLETTER_MAIL_FROM": "News <news@example.org>",
    }
    command = [sys.executable, "-m", "flask", "--app", "newsletter", "worker", "--until-idle"]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    received = [m.to for m in mailbox.wait_for(120)]
    assert len(received) == 120
    assert len(set(received)) == 120
    with app.app_context():
        statuses = {row.status for row in db.session.scalars(select(OutboxMessage))}
        assert statuses == {"sent"}


def test_a_hard_bounced_address_gets_no_account_mail_a_complainer_still_does(
    app, mailbox, run_worker
):
    """Gmail's and Yahoo's rules: a hard-bounced address is suppressed for all mail, a
    complaint only for bulk (newsletter) mail. A reset code to the hard-bounced address is
    recorded failed ('suppressed') without reaching SMTP; the complainer still gets their
    reset code, but not newsletter-stream mail (a welcome)."""
    from newsletter.delivery.accounts import RESET_KIND
    from newsletter.domain.suppressions import SuppressionKeys, suppress
    from tests.conftest import TEST_SECRET_KEY

    def reset_mail(to: str, kind: str = RESET_KIND) -> int:
        return queue_email(
            kind,
            to=to,
            template="account_reset",
            language="en",
            code="123456",
            reset_url="https://news.example.org/reset/abc",
            minutes=30,
        )

    with app.app_context():
        keys = SuppressionKeys(TEST_SECRET_KEY)
        suppress(keys, "gone@example.org", "hard_bounce", "5.1.1")
        suppress(keys, "angry@example.org", "complaint", "abuse")
        to_gone = reset_mail("Gone@Example.org")
        to_angry = reset_mail("angry@example.org")
        welcome_to_angry = reset_mail("angry@example.org", "subscription_welcome")
        to_fine = reset_mail("fine@example.org")
        db.session.commit()
    run_worker()
    messages = mailbox.wait_for(2)
    assert sorted(m.to for m in messages) == ["angry@example.org", "fine@example.org"]
    with app.app_context():
        for message_id in (to_gone, welcome_to_angry):
            row = outbox_row(message_id)
            assert row.status == OutboxStatus.FAILED, message_id
            assert row.last_error.startswith("suppressed")
            assert row.sent_at is None
        assert outbox_row(to_angry).status == OutboxStatus.SENT
        assert outbox_row(to_fine).status == OutboxStatus.SENT
    # Nothing else turns up late.
    assert len(mailbox.messages) == 2
