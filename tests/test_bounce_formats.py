"""Bounces that are not the tidy VERP'd RFC 3464 case, fed through the listener as an MTA would:
plain-text formats only flufl.bounce's detectors read (qmail, Exim, Yahoo!), and DSNs reaching
the plain bounce address with no return-path token, with and without VERP configured."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.domain.suppressions import SuppressionKeys, is_suppressed
from newsletter.extensions import db
from newsletter.inbound.listener import InboundController
from newsletter.models import InboundKind, InboundMessage
from tests.conftest import TEST_SECRET_KEY, free_port
from tests.support.feedback import (
    BOUNCE_ADDRESS,
    add_delivery,
    add_subscriber,
    bare_dsn,
    delay_notice,
    dsn,
    exim_bounce,
    qmail_bounce,
    send,
    status_of,
    yahoo_bounce,
)

pytestmark = pytest.mark.verp


def _listening(application):
    controller = InboundController(application, "127.0.0.1", free_port())
    controller.start()
    return controller


@pytest.fixture
def listener(app):
    """The listener of a site with VERP (``NEWSLETTER_BOUNCE_ADDRESS`` set)."""
    controller = _listening(app)
    yield controller
    controller.stop()


@pytest.fixture
def no_verp_listener(make_app):
    """The listener of a site without VERP: bounces name their subscriber by address only."""
    controller = _listening(make_app(BOUNCE_ADDRESS=""))
    yield controller
    controller.stop()


def only_record() -> InboundMessage:
    db.session.expire_all()
    return db.session.scalars(select(InboundMessage)).one()


@pytest.mark.parametrize("bounce", [qmail_bounce, exim_bounce, yahoo_bounce])
def test_plain_text_bounces_are_read_by_flufl_bounce_detectors(app, listener, codec, bounce):
    with app.app_context():
        gone = add_subscriber("gone@example.com")
        bystander = add_subscriber("bystander@example.com")
        add_delivery(bystander)
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(gone).id)
        send(listener, return_path, bounce(return_path, "gone@example.com"))
        assert status_of(gone.id) == "bounced"
        assert status_of(bystander.id) == "confirmed"
        record = only_record()
        assert record.kind == InboundKind.HARD_BOUNCE
        assert record.subscriber_id == gone.id
        assert is_suppressed(SuppressionKeys(TEST_SECRET_KEY), "gone@example.com")


def test_a_dsn_at_the_plain_address_is_traced_by_the_return_path_it_quotes(app, listener, codec):
    with app.app_context():
        gone = add_subscriber("gone@example.com")
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(gone).id)
        data = dsn(return_path, "gone@example.com", "5.1.1").replace(
            f"Delivered-To: {return_path}".encode(), f"Delivered-To: {BOUNCE_ADDRESS}".encode()
        )
        data = data.replace(f"To: {return_path}\r\n".encode(), f"To: {BOUNCE_ADDRESS}\r\n".encode())
        assert data.count(return_path.encode()) == 1  # only in the quoted original's headers
        send(listener, BOUNCE_ADDRESS, data)
        assert status_of(gone.id) == "bounced"
        assert only_record().subscriber_id == gone.id


def test_a_tokenless_dsn_at_the_plain_address_changes_nothing_and_is_kept_for_staff(app, listener):
    """With VERP, all our mail carries a token: a bounce without one could be forged by anyone
    to bounce any subscriber, so it is kept for staff (naming who it is about), not acted on."""
    with app.app_context():
        gone = add_subscriber("gone@example.com")
        add_delivery(gone)
        send(listener, BOUNCE_ADDRESS, bare_dsn(BOUNCE_ADDRESS, "gone@example.com", "5.1.1"))
        assert status_of(gone.id) == "confirmed"
        assert not is_suppressed(SuppressionKeys(TEST_SECRET_KEY), "gone@example.com")
        record = only_record()
        assert record.kind == InboundKind.UNKNOWN
        assert record.status_code == "5.1.1"
        assert record.subscriber_id == gone.id
        assert record.raw and b"gone@example.com" in record.raw
        assert "no return-path token" in record.outcome
        # Likewise a plain-text bounce that reaches the plain address.
        send(listener, BOUNCE_ADDRESS, qmail_bounce(BOUNCE_ADDRESS, "gone@example.com"))
        assert status_of(gone.id) == "confirmed"
        # A delay notice without a token is noise, not something for staff to read.
        send(listener, BOUNCE_ADDRESS, delay_notice(BOUNCE_ADDRESS, "gone@example.com"))
        db.session.expire_all()
        last = db.session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert last.kind == InboundKind.DELAYED and last.raw is None
        assert status_of(gone.id) == "confirmed"


def test_without_verp_a_dsn_names_its_subscriber_by_original_recipient(app, no_verp_listener):
    with app.app_context():
        moved = add_subscriber("moved@example.com")
        other = add_subscriber("reader@elsewhere.example.net")
        add_delivery(moved)
        # Forwarded on: Final-Recipient is where it ended up, Original-Recipient is ours.
        data = bare_dsn(
            BOUNCE_ADDRESS, "reader@elsewhere.example.net", "5.1.1", "moved@example.com"
        )
        send(no_verp_listener, BOUNCE_ADDRESS, data)
        assert status_of(moved.id) == "bounced"
        assert status_of(other.id) == "confirmed"
        record = only_record()
        assert record.kind == InboundKind.HARD_BOUNCE
        assert record.subscriber_id == moved.id


def test_without_verp_a_dsn_names_its_subscriber_by_final_recipient(app, no_verp_listener):
    with app.app_context():
        gone = add_subscriber("Gone@Example.com")
        send(
            no_verp_listener, BOUNCE_ADDRESS, bare_dsn(BOUNCE_ADDRESS, "gone@example.com", "5.1.1")
        )
        assert status_of(gone.id) == "bounced"


def test_without_verp_a_plain_text_bounce_names_its_subscriber_by_address(app, no_verp_listener):
    with app.app_context():
        gone = add_subscriber("gone@example.com")
        bystander = add_subscriber("bystander@example.com")
        send(no_verp_listener, BOUNCE_ADDRESS, exim_bounce(BOUNCE_ADDRESS, "gone@example.com"))
        assert status_of(gone.id) == "bounced"
        assert status_of(bystander.id) == "confirmed"


def test_without_verp_a_dsn_for_a_stranger_changes_nothing(app, no_verp_listener):
    with app.app_context():
        reader = add_subscriber("reader@example.com")
        send(
            no_verp_listener,
            BOUNCE_ADDRESS,
            bare_dsn(BOUNCE_ADDRESS, "nobody@example.com", "5.1.1"),
        )
        assert status_of(reader.id) == "confirmed"
        record = only_record()
        assert record.subscriber_id is None
        assert "no subscriber of ours" in record.outcome
