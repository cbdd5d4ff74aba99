"""Double opt-in subscriptions, end to end through a real SMTP server."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import OutboxMessage, Subscriber, SubscriberStatus


def subscriber(email_key: str) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_subscribe_confirm_and_one_click_unsubscribe(app, client, mailbox, run_worker):
    response = client.post(
        "/api/v1/subscriptions", json={"email": "Reader@Example.org", "language": "en"}
    )
    assert response.status_code == 202
    assert response.get_json() == {"status": "pending"}

    run_worker()
    [confirmation] = mailbox.wait_for(1)
    assert confirmation.to == "Reader@example.org"
    assert confirmation.message.get_content_type() == "multipart/alternative"
    assert confirmation.header("Message-ID") and confirmation.header("Date")
    assert confirmation.header("Content-Language") == "en"
    assert confirmation.header("Auto-Submitted") == "auto-generated"
    links = confirmation.links()
    assert len(links) == 1, links
    assert links[0].startswith("https://news.example.org/subscribe/confirm/")

    page = client.get(path_of(links[0]))
    assert page.status_code == 200
    assert "Your subscription is confirmed" in page.get_data(as_text=True)
    with app.app_context():
        row = subscriber("reader@example.org")
        assert row.status == SubscriberStatus.CONFIRMED
        assert row.confirmed_at is not None

    # The welcome email is a newsletter message: it carries the List-Unsubscribe headers.
    mailbox.clear()
    run_worker()
    [welcome] = mailbox.wait_for(1)
    assert welcome.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert welcome.header("List-Id") == "<newsletter.localhost>"
    unsubscribe_url = welcome.header("List-Unsubscribe").split(",")[0].strip(" <>")
    assert unsubscribe_url.startswith("https://news.example.org/unsubscribe/")
    assert unsubscribe_url in welcome.text
    assert unsubscribe_url in welcome.html

    # Link scanners prefetch with GET: it must not unsubscribe.
    assert client.get(path_of(unsubscribe_url)).status_code == 200
    with app.app_context():
        assert subscriber("reader@example.org").status == SubscriberStatus.CONFIRMED

    fresh = app.test_client()  # RFC 8058: no cookies, no CSRF token
    response = fresh.post(
        path_of(unsubscribe_url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    with app.app_context():
        row = subscriber("reader@example.org")
        assert row.status == SubscriberStatus.UNSUBSCRIBED
        assert row.unsubscribe_method == "one-click"
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 2
