"""The suppression list: an address that bounced hard or complained is refused at subscribe
(still 202, no email), at CSV import (row reported) and shown in the console, where staff can
lift it; the console counts bounces and complaints per digest and on the dashboard."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, func, select

from newsletter.domain.return_paths import ReturnPathCodec
from newsletter.extensions import db
from newsletter.inbound.processor import receive
from newsletter.models import OutboxMessage, Subscriber, Suppression
from tests.conftest import TEST_SECRET_KEY
from tests.support.feedback import BOUNCE_ADDRESS, add_delivery, add_subscriber, arf, dsn
from tests.test_admin import csrf_token, log_in, make_user, post_import

pytestmark = pytest.mark.verp  # the app gets BOUNCE_ADDRESS (tests/conftest.py)


@pytest.fixture
def staff_client(app):
    client = app.test_client()
    log_in(app, client, make_user(app, "editor@example.org", staff=True))
    return client


def hard_bounce(app, email: str) -> tuple[int, int]:
    """A subscriber whose digest delivery bounced with 5.1.1: (subscriber id, digest id)."""
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    with app.app_context():
        subscriber = add_subscriber(email)
        delivery = add_delivery(subscriber)
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", delivery.id)
        receive("smtp", dsn(return_path, email, "5.1.1"), recipients=[return_path])
        return subscriber.id, delivery.digest_id


def subscribe(client, email: str):
    return client.post("/api/v1/subscriptions", json={"email": email})


def test_a_suppressed_address_gets_202_and_no_email(app, client, mailbox, run_worker):
    subscriber_id, _digest = hard_bounce(app, "gone@example.com")
    response = subscribe(client, "Gone@Example.com")
    assert response.status_code == 202
    assert response.get_json() == {"status": "pending"}
    # The same answer as an ordinary address, which does get its email.
    assert subscribe(client, "fresh@example.com").status_code == 202
    run_worker()
    mailbox.wait_for(1)
    assert [m.to for m in mailbox.messages] == ["fresh@example.com"]
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id).status == "bounced"


def test_suppression_outlives_the_erased_subscriber(app, client, mailbox, run_worker):
    subscriber_id, _digest = hard_bounce(app, "gone@example.com")
    with app.app_context():
        db.session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
        db.session.commit()
    assert subscribe(client, "gone@example.com").status_code == 202
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 0
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_import_reports_a_suppressed_row_and_skips_it(app, staff_client):
    subscriber_id, _digest = hard_bounce(app, "gone@example.com")
    with app.app_context():
        db.session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
        db.session.commit()
    csv_text = "email\r\ngone@example.com\r\nnew@example.com\r\n"
    preview = post_import(staff_client, csv_text).get_data(as_text=True)
    assert "On the suppression list (hard bounce or complaint)" in preview
    post_import(staff_client, csv_text, step="import")
    with app.app_context():
        keys = set(db.session.scalars(select(Subscriber.email_key)))
    assert keys == {"new@example.com"}


def test_console_lists_and_lifts_a_suppression(app, client, staff_client, mailbox, run_worker):
    hard_bounce(app, "gone@example.com")
    page = staff_client.get("/admin/suppressions")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "gone@example.com" in html
    assert "hard bounce" in html and "5.1.1" in html
    with app.app_context():
        entry = db.session.scalars(select(Suppression)).one()
        entry_id, entry_hash = entry.id, entry.address_hash
    assert entry_hash[:16] in html
    token = csrf_token(staff_client, "/admin/suppressions")
    # Without the CSRF token: refused, nothing lifted.
    assert staff_client.post(f"/admin/suppressions/{entry_id}/lift").status_code == 400
    lifted = staff_client.post(f"/admin/suppressions/{entry_id}/lift", data={"csrf_token": token})
    assert lifted.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count(Suppression.id))) == 0
    assert staff_client.post(
        f"/admin/suppressions/{entry_id}/lift", data={"csrf_token": token}
    ).status_code == 404
    # Lifted: the address may subscribe again (double opt-in as always).
    assert subscribe(client, "gone@example.com").status_code == 202
    run_worker()
    assert [m.to for m in mailbox.wait_for(1)] == ["gone@example.com"]


def test_the_suppression_page_is_for_staff_only(app, client):
    response = client.get("/admin/suppressions")
    assert response.status_code in (302, 303, 401, 403)
    assert "gone" not in response.get_data(as_text=True)


def test_console_counts_bounces_and_complaints_per_digest_and_on_the_dashboard(
    app, staff_client
):
    _gone, digest_id = hard_bounce(app, "gone@example.com")
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    with app.app_context():
        angry = add_subscriber("angry@example.com")
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", angry.id)
        receive("smtp", arf(BOUNCE_ADDRESS, angry.email, f"<mailto:{mailto}>"))
    dashboard = staff_client.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-count="bounces">1<', dashboard)
    assert re.search(r'data-count="complaints">1<', dashboard)
    digest_page = staff_client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert "Came back: 1 bounces (hard 1), 0 complaints." in digest_page


def test_a_suppressed_address_is_skipped_at_send(app, mailbox, run_worker):
    """Defence in depth: even a confirmed row whose address is on the list gets nothing."""
    from newsletter.domain.digests import create_digest
    from newsletter.domain.suppressions import SuppressionKeys, suppress
    from newsletter.models import Delivery
    from newsletter.scheduling.jobs import run_digest
    from tests.support.digests import add_release, add_subscribers

    with app.app_context():
        add_subscribers(3, language="en", prefix="reader")
        add_release(language="en")
        suppress(SuppressionKeys(TEST_SECRET_KEY), "reader-1@example.org", "complaint", "test")
        digest = create_digest({"language": "en"})
        db.session.commit()
        assert run_digest(digest.id).result == "sending"
    run_worker()
    messages = mailbox.wait_for(2)
    assert sorted(m.to for m in messages) == ["reader-0@example.org", "reader-2@example.org"]
    with app.app_context():
        skipped = db.session.execute(
            select(Delivery.status, Delivery.smtp_response)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "reader-1@example.org")
        ).one()
        assert skipped.status == "failed" and skipped.smtp_response.startswith("suppressed")


@pytest.mark.parametrize("page", ["0", "00", "-1", "99999999"])
def test_the_suppression_page_takes_any_page_number(app, staff_client, page):
    """Page 0 once reached the database as OFFSET -50 (a 500 on PostgreSQL): a page number
    below 1 is the first page, one past the end an empty page."""
    hard_bounce(app, "gone@example.com")
    response = staff_client.get(f"/admin/suppressions?page={page}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert ("gone@example.com" in html) is (page != "99999999")
