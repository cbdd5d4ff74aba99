"""Bounces, complaints and mailto unsubscribes fed to the inbound listener as an MTA would:
smtplib to its port, over SMTP and LMTP. What counts is the subscriber's state afterwards and
the inbound record."""

from __future__ import annotations

import smtplib
import subprocess

import pytest
from sqlalchemy import func, select

from newsletter.domain.suppressions import SuppressionKeys, is_suppressed
from newsletter.extensions import db
from newsletter.inbound.listener import InboundController
from newsletter.models import InboundKind, InboundMessage, Subscriber, Suppression
from tests.conftest import TEST_SECRET_KEY, free_port
from tests.support.digests import wait_until
from tests.support.feedback import (
    BOUNCE_ADDRESS,
    add_delivery,
    add_subscriber,
    arf,
    bounced_reader,
    delivery_return_path,
    dsn,
    mailto_request,
    malformed_messages,
    status_of,
)
from tests.support.processes import ROOT, flask_command

pytestmark = pytest.mark.verp


@pytest.fixture(params=["smtp", "lmtp"])
def listener(request, app):
    lmtp = request.param == "lmtp"
    controller = InboundController(app, "127.0.0.1", free_port(), lmtp=lmtp)
    controller.start()
    controller.lmtp_mode = lmtp
    yield controller
    controller.stop()


def send(listener, recipient: str, data: bytes, sender: str = "") -> None:
    """Hand one message to the listener the way an MTA does; raises unless it is accepted."""
    if listener.lmtp_mode:
        client = smtplib.LMTP("127.0.0.1", listener.port)
    else:
        client = smtplib.SMTP("127.0.0.1", listener.port, timeout=10)
    with client:
        refused = client.sendmail(sender, [recipient], data)
        assert refused == {}


def test_hard_bounce_dsn_makes_its_subscriber_bounced_and_suppressed(app, listener, codec):
    with app.app_context():
        gone = add_subscriber("gone@example.com")
        other = add_subscriber("other@example.com")
        delivery = add_delivery(gone)
        add_delivery(other)
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", delivery.id)
        send(listener, return_path, dsn(return_path, "gone@example.com", "5.1.1"))
        assert status_of(gone.id) == "bounced"
        assert status_of(other.id) == "confirmed"
        record = db.session.scalars(select(InboundMessage)).one()
        assert record.kind == InboundKind.HARD_BOUNCE
        assert record.status_code == "5.1.1"
        assert record.subscriber_id == gone.id
        assert record.digest_id == delivery.digest_id
        assert record.raw is None  # understood: no copy kept
        assert "bounced" in record.outcome
        keys = SuppressionKeys(TEST_SECRET_KEY)
        assert is_suppressed(keys, "gone@example.com")
        assert not is_suppressed(keys, "other@example.com")
        # Only a keyed hash is stored, never the address.
        stored = db.session.scalars(select(Suppression.address_hash)).one()
        assert "gone" not in stored and len(stored) == 64


def test_return_path_token_survives_a_lower_casing_mta(app, listener, codec):
    with app.app_context():
        gone = add_subscriber("Gone@Example.com")
        delivery = add_delivery(gone)
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", delivery.id).upper()
        send(listener, return_path, dsn(return_path, "Gone@Example.com", "5.1.1"))
        assert status_of(gone.id) == "bounced"


def soft_bounce(listener, codec, subscriber: Subscriber) -> None:
    """One more digest to ``subscriber``, answered with a mailbox-full DSN (4.2.2)."""
    return_path = delivery_return_path(codec, subscriber)
    send(listener, return_path, dsn(return_path, subscriber.email, "4.2.2"))


def days_earlier(days: int = 1) -> None:
    """What has come back so far arrived ``days`` earlier."""
    from datetime import timedelta

    for row in db.session.scalars(select(InboundMessage)):
        row.received_at -= timedelta(days=days)
    db.session.commit()


def test_soft_bounces_decay_one_leaves_confirmed_three_days_make_bounced(app, listener, codec):
    with app.app_context():
        full = add_subscriber("full@example.com")
        # One digest a day, each soft-bouncing: the score counts days (tests/test_bounce_score).
        for day in range(3):
            soft_bounce(listener, codec, full)
            assert status_of(full.id) == ("bounced" if day == 2 else "confirmed")
            days_earlier()
        kinds = db.session.scalars(select(InboundMessage.kind)).all()
        assert kinds == [InboundKind.SOFT_BOUNCE] * 3
        # A soft bounce is not a reason to refuse the address for ever.
        assert not is_suppressed(SuppressionKeys(TEST_SECRET_KEY), "full@example.com")


def test_old_soft_bounces_no_longer_count(app, listener, codec):
    from newsletter.config import SOFT_BOUNCE_WINDOW

    with app.app_context():
        full = add_subscriber("full@example.com")
        for _ in range(2):
            soft_bounce(listener, codec, full)
            days_earlier()
        days_earlier(SOFT_BOUNCE_WINDOW.days)
        soft_bounce(listener, codec, full)
        assert status_of(full.id) == "confirmed"


def test_arf_complaint_unsubscribes_with_the_reason_in_the_consent_record(app, listener, codec):
    with app.app_context():
        angry = add_subscriber("angry@example.com")
        calm = add_subscriber("calm@example.com")
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", angry.id)
        list_unsubscribe = f"<https://news.example.org/u/x>, <mailto:{mailto}?subject=unsubscribe>"
        send(listener, BOUNCE_ADDRESS, arf(BOUNCE_ADDRESS, "angry@example.com", list_unsubscribe))
        db.session.expire_all()
        row = db.session.get(Subscriber, angry.id)
        assert row.status == "unsubscribed"
        assert row.unsubscribe_method == "complaint"
        assert "complaint (abuse)" in row.unsubscribe_reason
        assert status_of(calm.id) == "confirmed"
        assert is_suppressed(SuppressionKeys(TEST_SECRET_KEY), "angry@example.com")
        assert db.session.scalars(select(InboundMessage.kind)).one() == InboundKind.COMPLAINT


def test_mailto_request_unsubscribes_its_owner_and_nobody_else(app, listener, codec):
    with app.app_context():
        owner = add_subscriber("owner@example.com")
        victim = add_subscriber("victim@example.com")
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", owner.id)
        # The From names someone else: only the token counts.
        send(listener, mailto, mailto_request("victim@example.com", mailto), "victim@example.com")
        assert status_of(owner.id) == "unsubscribed"
        assert status_of(victim.id) == "confirmed"
        assert db.session.get(Subscriber, owner.id).unsubscribe_method == "mailto"
        # A forged token (the victim's id, a made-up signature) unsubscribes nobody.
        token = codec.token("subscriber", victim.id)
        forged = f"bounces+{token[:-3]}abc@example.org"
        send(listener, forged, mailto_request("x@example.net", forged))
        assert status_of(victim.id) == "confirmed"
        assert db.session.scalars(
            select(InboundMessage.kind).order_by(InboundMessage.id)
        ).all() == [InboundKind.UNSUBSCRIBE, InboundKind.UNKNOWN]


def test_a_hundred_malformed_messages_change_nothing_and_crash_nothing(app, listener, codec):
    with app.app_context():
        subscribers = [add_subscriber(f"reader{i}@example.com") for i in range(5)]
        for subscriber in subscribers:
            add_delivery(subscriber)
        for data in malformed_messages(100, BOUNCE_ADDRESS):
            send(listener, BOUNCE_ADDRESS, data)
        db.session.expire_all()
        assert {status_of(s.id) for s in subscribers} == {"confirmed"}
        assert db.session.scalar(select(func.count(Suppression.id))) == 0
        rows = db.session.scalars(select(InboundMessage)).all()
        assert len(rows) == 100
        assert {row.kind for row in rows} <= {
            InboundKind.UNKNOWN,
            InboundKind.HARD_BOUNCE,
            InboundKind.SOFT_BOUNCE,
            InboundKind.COMPLAINT,
        }
        assert all(row.processed_at is not None and row.error is None for row in rows)
        assert all(row.subscriber_id is None for row in rows)
        # Unknown mail is kept for staff.
        assert all(row.raw is not None for row in rows if row.kind == InboundKind.UNKNOWN)
        # Still listening.
        gone = subscribers[0]
        return_path = codec.address(
            BOUNCE_ADDRESS, "subscriber", gone.id
        )  # a DSN naming the subscriber's own token
        send(listener, return_path, dsn(return_path, gone.email, "5.1.1"))
        assert status_of(gone.id) == "bounced"


def test_a_message_whose_processing_fails_is_stored_and_retried(app, listener, codec, monkeypatch):
    from newsletter.inbound import processor

    with app.app_context():
        gone_id, return_path, data = bounced_reader(codec)

        def broken(*_args, **_kwargs):
            raise RuntimeError("processing crashed")

        monkeypatch.setattr(processor, "apply_classification", broken)
        send(listener, return_path, data)
        db.session.expire_all()
        row = db.session.scalars(select(InboundMessage)).one()
        assert row.kind == InboundKind.PENDING
        assert row.raw and b"5.1.1" in row.raw
        assert row.attempts == 1 and "processing crashed" in row.error
        assert status_of(gone_id) == "confirmed"
        monkeypatch.undo()
        row.received_at = row.received_at.replace(year=row.received_at.year - 1)
        db.session.commit()
        assert processor.retry_pending() == 1
        assert status_of(gone_id) == "bounced"


def test_inbound_command_listens_and_stores(app, app_config, codec, tmp_path):
    """``flask --app newsletter inbound`` as its own process, fed by smtplib."""
    import os

    port = free_port()
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "NEWSLETTER_BOUNCE_ADDRESS": BOUNCE_ADDRESS,
    }
    with app.app_context():
        gone_id, return_path, data = bounced_reader(codec)
    log = open(tmp_path / "inbound.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        flask_command("inbound", "--host", "127.0.0.1", "--port", str(port), "--lmtp"),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:

        def connectable() -> bool:
            try:
                smtplib.LMTP("127.0.0.1", port).quit()
                return True
            except OSError:
                return False

        wait_until(connectable, timeout=30, message="listener did not start")
        with smtplib.LMTP("127.0.0.1", port) as client:
            assert client.sendmail("", [return_path], data) == {}
        with app.app_context():
            assert status_of(gone_id) == "bounced"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_inbound_changes_emit_the_outgoing_webhook_events(app, codec):
    """The feedback loop goes through the same domain changes as the rest: a 5.1.1 DSN queues
    ``subscriber.bounced`` and a mailto request ``subscriber.unsubscribed`` for an endpoint
    that wants them (rows written with the change), and the bounce is counted."""
    import json

    from prometheus_client import REGISTRY

    from newsletter.domain.webhooks import create_endpoint
    from newsletter.inbound.processor import receive
    from newsletter.models import WebhookDelivery

    def bounces_counted() -> float:
        return REGISTRY.get_sample_value("newsletter_bounces_total", {"source": "inbound"}) or 0

    with app.app_context():
        create_endpoint(
            "http://127.0.0.1:9/hook", ["subscriber.bounced", "subscriber.unsubscribed"]
        )
        gone = add_subscriber("gone@example.com")
        leaving = add_subscriber("leaving@example.com")
        delivery = add_delivery(gone)
        db.session.commit()
        before = bounces_counted()
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", delivery.id)
        receive("smtp", dsn(return_path, "gone@example.com", "5.1.1"), recipients=[return_path])
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", leaving.id)
        receive("smtp", mailto_request("leaving@example.com", mailto), recipients=[mailto])
        # The same DSN again changes nothing, so it says nothing again.
        receive("smtp", dsn(return_path, "gone@example.com", "5.1.1"), recipients=[return_path])
        rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        counted = bounces_counted() - before
    events = [(row.event_type, json.loads(row.body)["data"]) for row in rows]
    assert [(kind, data["email"]) for kind, data in events] == [
        ("subscriber.bounced", "gone@example.com"),
        ("subscriber.unsubscribed", "leaving@example.com"),
    ]
    assert events[1][1]["method"] == "mailto"
    assert counted == 1
