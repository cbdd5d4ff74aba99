"""Issue 11, finding 9: delivered mail bodies (live links and codes) are purged after the
retention time, keeping per-message facts; deliveries are trimmed; deleting an account
erases the mail stored for it. The worker does the purge."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Delivery, OutboxMessage, OutboxStatus, utcnow
from tests.support.accounts import STRONG_PASSWORD, make_user
from tests.support.digests import add_release, add_subscribers
from tests.support.live import HttpClient, LiveServer


def outbox_row(recipient: str, *, status: str, age: timedelta, body: bytes) -> int:
    when = utcnow() - age
    row = OutboxMessage(
        kind="account_reset",
        recipient=recipient,
        recipient_key=recipient.casefold(),
        message=body,
        status=status,
        attempts=1,
        next_attempt_at=when,
        created_at=when,
        sent_at=when if status == OutboxStatus.SENT else None,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def sent_delivery(digest_id: int, subscriber_id: int, *, age: timedelta, **values) -> None:
    """A delivery recorded sent ``age`` ago (the caller commits)."""
    db.session.add(
        Delivery(
            digest_id=digest_id,
            subscriber_id=subscriber_id,
            status="sent",
            attempts=1,
            updated_at=utcnow() - age,
            **values,
        )
    )


def test_the_worker_purges_old_delivered_bodies_and_keeps_the_facts(app, run_worker):
    with app.app_context():
        old = outbox_row("a@example.org", status="sent", age=timedelta(days=8), body=b"code 123456")
        recent = outbox_row("b@example.org", status="sent", age=timedelta(days=1), body=b"code 1")
        failed = outbox_row("c@example.org", status="failed", age=timedelta(days=9), body=b"x")
        address = add_subscribers(1)[0]
        add_release(title="Old news")
        from newsletter.models import Digest, DigestStatus, Subscriber

        digest = Digest(status=DigestStatus.SENT, paused=False, language="fr", send_at=utcnow())
        db.session.add(digest)
        db.session.flush()
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == address))
        sent_delivery(
            digest.id,
            subscriber.id,
            age=timedelta(days=8),
            smtp_code=250,
            smtp_response="250 2.0.0 Ok: queued as ABC for " + address,
        )
        db.session.commit()
    run_worker()
    with app.app_context():
        rows = {row.id: row for row in db.session.scalars(select(OutboxMessage))}
        assert rows[old].message == b"" and rows[failed].message == b""
        assert rows[recent].message == b"code 1"
        # The facts stay: who, what kind, when, with what outcome.
        assert rows[old].recipient == "a@example.org" and rows[old].status == "sent"
        assert rows[old].kind == "account_reset" and rows[old].sent_at is not None
        (delivery,) = db.session.scalars(select(Delivery)).all()
        assert delivery.status == "sent" and delivery.smtp_code == 250
        assert delivery.smtp_response is None


def test_deleting_an_account_erases_its_stored_mail(app):
    email = "leaving@example.org"
    make_user(app, email)
    with app.app_context():
        outbox_row(email, status="sent", age=timedelta(hours=1), body=b"code 654321")
        outbox_row("other@example.org", status="sent", age=timedelta(hours=1), body=b"keep")
    with LiveServer(app) as server:
        http = HttpClient(server.url)
        response = http.post("/account/login", json={"email": email, "password": STRONG_PASSWORD})
        assert response.status == 200
        deleted = http.post("/account/delete", json={"password": STRONG_PASSWORD})
        assert deleted.status == 200, deleted.text
    with app.app_context():
        recipients = db.session.scalars(select(OutboxMessage.recipient_key)).all()
        assert recipients == ["other@example.org"]


def test_the_worker_deletes_finished_history_older_than_its_time_and_keeps_running_digests(
    app, run_worker
):
    from newsletter.config import DELIVERY_HISTORY_DAYS
    from newsletter.models import Digest, DigestStatus, Subscriber

    ancient = timedelta(days=DELIVERY_HISTORY_DAYS + 1)
    with app.app_context():
        gone = outbox_row("a@example.org", status="sent", age=ancient, body=b"old")
        kept = outbox_row("b@example.org", status="sent", age=timedelta(days=30), body=b"")
        addresses = add_subscribers(2)
        subscribers = db.session.scalars(
            select(Subscriber).where(Subscriber.email.in_(addresses)).order_by(Subscriber.id)
        ).all()
        finished = Digest(
            status=DigestStatus.SENT, paused=False, language="fr", send_at=utcnow() - ancient
        )
        finished.recipients = finished.sent = 2
        # Paused mid-send, so the worker does not finish it during this run.
        running = Digest(status=DigestStatus.SENDING, paused=True, language="fr", send_at=utcnow())
        db.session.add_all([finished, running])
        db.session.flush()
        for digest in (finished, running):
            for subscriber in subscribers:
                sent_delivery(digest.id, subscriber.id, age=ancient)
        finished_id, running_id = finished.id, running.id
        db.session.commit()
    run_worker()
    with app.app_context():
        assert set(db.session.scalars(select(OutboxMessage.id))) == {kept}
        assert gone not in set(db.session.scalars(select(OutboxMessage.id)))
        left = db.session.scalars(select(Delivery.digest_id)).all()
        assert left == [running_id, running_id]  # a running digest keeps every row
        digest = db.session.get(Digest, finished_id)
        assert (digest.recipients, digest.sent) == (2, 2)  # its figures outlive the rows
