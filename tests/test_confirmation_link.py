"""Issue 11, finding 8: mail scanners (Safe Links, Proofpoint) fetch every link in a message.
The confirmation link's GET shows one button and changes nothing; only its POST confirms."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.support.live import HttpClient, LiveServer


def subscriber(app, address: str) -> Subscriber:
    with app.app_context():
        db.session.expire_all()
        row = db.session.query(Subscriber).filter_by(email=address).one()
        db.session.expunge(row)
        return row


def subscribe_and_get_link(app, http, mailbox, run_worker, address: str) -> str:
    response = http.post("/api/v1/subscriptions", json={"email": address, "language": "en"})
    assert response.status == 202
    run_worker()
    (message,) = mailbox.wait_for(1)
    (link,) = [url for url in message.links() if "/subscribe/confirm/" in url]
    return urlsplit(link).path


def test_a_scanner_fetching_the_confirmation_link_leaves_the_address_pending(
    app, mailbox, run_worker
):
    address = "scanned@example.org"
    with LiveServer(app) as server:
        http = HttpClient(server.url)
        path = subscribe_and_get_link(app, http, mailbox, run_worker, address)
        # A scanner fetches the link (several times, with and without Accept headers).
        for headers in ({}, {"Accept": "application/json"}, {"Accept": "text/html"}):
            page = http.get(path, headers=headers)
            assert page.status == 200
        assert subscriber(app, address).status == SubscriberStatus.PENDING
        # The page holds exactly one button, whose form posts back to the link.
        forms = re.findall(r"<form[^>]*>.*?</form>", page.text, re.S)
        assert len(forms) == 1 and 'method="post"' in forms[0], page.text
        assert f'action="{path}"' in forms[0]
        assert len(re.findall(r"<button", page.text)) == 1
        run_worker()
        assert len(mailbox.messages) == 1  # no welcome email either

        confirmed = http.post(path, data={})
        assert confirmed.status == 200
        assert "Your subscription is confirmed" in confirmed.text
        row = subscriber(app, address)
        assert row.status == SubscriberStatus.CONFIRMED and row.confirmed_ip == "127.0.0.1"
        run_worker()
        assert len(mailbox.wait_for(2)) == 2  # the welcome email, once
        # Reused: harmless, same page.
        assert http.post(path, data={}).status == 200
        run_worker()
        assert len(mailbox.messages) == 2


def test_confirmation_answers_json_too(app, mailbox, run_worker):
    address = "json@example.org"
    with LiveServer(app) as server:
        http = HttpClient(server.url)
        path = subscribe_and_get_link(app, http, mailbox, run_worker, address)
        response = http.post(path, json={})
        assert response.status == 200, response.text
        assert response.json() == {"status": "confirmed"}
        bad = http.post(path[:-6] + "AAAAAA", json={})
        assert bad.status == 400
        assert bad.json()["error"]["code"] == "invalid_link"
        page = http.get(path[:-6] + "AAAAAA")
        assert page.status == 400 and "/subscribe" in page.text
