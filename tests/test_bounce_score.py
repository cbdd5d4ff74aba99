"""The soft-bounce score, fed through the listener as an MTA would: like Mailman's bounce score
it counts days with a soft bounce (one per day, a delivery counted once), never delay notices,
and the subscriber is bounced once the score reaches the threshold inside the window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.config import SOFT_BOUNCES_BEFORE_BOUNCED
from newsletter.extensions import db
from newsletter.inbound.listener import InboundController
from newsletter.models import InboundKind, InboundMessage
from tests.conftest import free_port
from tests.support.feedback import (
    BOUNCE_ADDRESS,
    add_delivery,
    add_subscriber,
    delay_notice,
    dsn,
    send,
    status_of,
)

pytestmark = pytest.mark.verp


@pytest.fixture
def listener(app):
    controller = InboundController(app, "127.0.0.1", free_port())
    controller.start()
    yield controller
    controller.stop()


def last_outcome() -> str:
    db.session.expire_all()
    return db.session.scalars(
        select(InboundMessage.outcome).order_by(InboundMessage.id.desc())
    ).first()


def age_everything_by_a_day() -> None:
    """What has come back so far arrived one day earlier."""
    for row in db.session.scalars(select(InboundMessage)):
        row.received_at -= timedelta(days=1)
    db.session.commit()


def test_delay_notices_are_not_bounces_and_score_nothing(app, listener, codec):
    with app.app_context():
        slow = add_subscriber("slow@example.com")
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(slow).id)
        for _ in range(5):
            send(listener, return_path, delay_notice(return_path, "slow@example.com"))
        assert status_of(slow.id) == "confirmed"
        rows = db.session.scalars(select(InboundMessage)).all()
        assert [row.kind for row in rows] == [InboundKind.DELAYED] * 5
        assert all(row.subscriber_id == slow.id for row in rows)
        assert "not a bounce" in last_outcome()
        # The first real soft bounce after them is the first point of the score.
        other = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(slow).id)
        send(listener, other, dsn(other, "slow@example.com", "4.2.2"))
        assert last_outcome().endswith(f"soft bounce score 1/{SOFT_BOUNCES_BEFORE_BOUNCED}")
        assert status_of(slow.id) == "confirmed"


def test_three_soft_bounces_the_same_day_for_one_delivery_score_one(app, listener, codec):
    with app.app_context():
        full = add_subscriber("full@example.com")
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(full).id)
        for _ in range(3):
            send(listener, return_path, dsn(return_path, "full@example.com", "4.2.2"))
        assert status_of(full.id) == "confirmed"
        assert last_outcome().endswith(f"soft bounce score 1/{SOFT_BOUNCES_BEFORE_BOUNCED}")
        kinds = db.session.scalars(select(InboundMessage.kind)).all()
        assert kinds == [InboundKind.SOFT_BOUNCE] * 3


def test_several_deliveries_bouncing_the_same_day_score_one(app, listener, codec):
    with app.app_context():
        full = add_subscriber("full@example.com")
        for _ in range(SOFT_BOUNCES_BEFORE_BOUNCED + 1):
            return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(full).id)
            send(listener, return_path, dsn(return_path, "full@example.com", "4.2.2"))
        assert status_of(full.id) == "confirmed"
        assert last_outcome().endswith(f"soft bounce score 1/{SOFT_BOUNCES_BEFORE_BOUNCED}")


def test_one_delivery_bouncing_on_several_days_counts_once(app, listener, codec):
    with app.app_context():
        full = add_subscriber("full@example.com")
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(full).id)
        for _ in range(SOFT_BOUNCES_BEFORE_BOUNCED + 1):
            send(listener, return_path, dsn(return_path, "full@example.com", "4.2.2"))
            age_everything_by_a_day()
        assert status_of(full.id) == "confirmed"
        assert last_outcome().endswith(f"soft bounce score 1/{SOFT_BOUNCES_BEFORE_BOUNCED}")


def test_soft_bounces_on_distinct_days_bounce_the_subscriber_at_the_threshold(app, listener, codec):
    with app.app_context():
        full = add_subscriber("full@example.com")
        bystander = add_subscriber("bystander@example.com")
        add_delivery(bystander)
        for day in range(1, SOFT_BOUNCES_BEFORE_BOUNCED + 1):
            # One digest a day, each one soft-bouncing (twice, the second one not counting).
            return_path = codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(full).id)
            send(listener, return_path, dsn(return_path, "full@example.com", "4.2.2"))
            send(listener, return_path, dsn(return_path, "full@example.com", "4.2.2"))
            if day < SOFT_BOUNCES_BEFORE_BOUNCED:
                assert status_of(full.id) == "confirmed"
                assert last_outcome().endswith(
                    f"soft bounce score {day}/{SOFT_BOUNCES_BEFORE_BOUNCED}"
                )
                age_everything_by_a_day()
        assert status_of(full.id) == "bounced"
        assert status_of(bystander.id) == "confirmed"
