"""Outgoing webhooks (issue 14): events written with the change, posted by the worker to a
real HTTP receiver on loopback, signed the Standard Webhooks way; retries back off, and an
endpoint that keeps failing is disabled, as the console says."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from newsletter.delivery.signing import app_signer
from newsletter.domain.accounts import create_staff
from newsletter.domain.digests import new_digest
from newsletter.domain.subscriptions import confirm_subscription, confirmation_token, unsubscribe
from newsletter.domain.webhooks import emit_event
from newsletter.extensions import db
from newsletter.models import (
    Subscriber,
    SubscriberStatus,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from tests.conftest import free_port
from tests.support.accounts import STRONG_PASSWORD, login, post_form, speak_english
from tests.support.digests import add_release, add_subscribers


class Receiver:
    """A real HTTP server that records every POST and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[float, dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.received.append((time.monotonic(), headers, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def verified(secret: str, headers: dict[str, str], body: str) -> bool:
    """The receiver's check, written from the Standard Webhooks spec (not our signer)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = [part.split(",", 1) for part in headers["webhook-signature"].split()]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(v == "v1" and hmac.compare_digest(s, expected) for v, s in versions)


def owner_console(app):
    with app.app_context():
        create_staff("owner@example.org", STRONG_PASSWORD, language="en")
        db.session.commit()
    client = app.test_client()
    speak_english(client)
    assert login(client, "owner@example.org", STRONG_PASSWORD).status_code == 303
    return client


def add_endpoint(console, url: str, events: list[str]) -> tuple[int, str]:
    response = post_form(
        console, "/admin/webhooks", "/admin/webhooks", {"url": url, "events": events}
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    endpoint = db.session.scalars(
        select(WebhookEndpoint).order_by(WebhookEndpoint.id.desc())
    ).first()
    return endpoint.id, endpoint.secret


ALL_EVENTS = [
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "digest.sent",
]


def test_a_receiver_gets_signed_events_it_can_verify(app, run_worker):
    console = owner_console(app)
    with Receiver() as receiver, app.app_context():
        _id, secret = add_endpoint(console, receiver.url, ALL_EVENTS)
        add_subscribers(1, language="fr", status=SubscriberStatus.PENDING)
        subscriber = db.session.scalar(select(Subscriber))
        outcome = confirm_subscription(
            app_signer(), confirmation_token(app_signer(), subscriber), ip="192.0.2.1"
        )
        assert outcome.state == "ok"
        db.session.commit()
        # A change rolled back sends nothing.
        unsubscribe(subscriber, method="link")
        db.session.rollback()
        run_worker()
        assert [json.loads(body)["type"] for _t, _h, body in receiver.received] == [
            "subscriber.confirmed"
        ]
        subscriber = db.session.scalar(select(Subscriber))
        unsubscribe(subscriber, method="one-click")
        db.session.commit()
        # A digest to a few confirmed readers.
        add_subscribers(3, language="en")
        add_release(language="en", title="Budget")
        digest = new_digest(language="en", send_at=utcnow())
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
        run_worker()
        run_worker()
    events = [(headers, json.loads(body), body) for _t, headers, body in receiver.received]
    assert [event["type"] for _h, event, _b in events] == [
        "subscriber.confirmed",
        "subscriber.unsubscribed",
        "digest.sent",
    ]
    for headers, _event, body in events:
        assert headers["content-type"] == "application/json"
        assert verified(secret, headers, body), headers
        assert not verified(secret, headers, body.replace("}", " }", 1))
    assert len({headers["webhook-id"] for headers, _e, _b in events}) == 3
    confirmed, left, sent = (event["data"] for _h, event, _b in events)
    assert confirmed["email"] == left["email"] and left["method"] == "one-click"
    assert sent == {"id": digest_id, "recipients": 3, "sent": 3, "failed": 0}
    page = console.get("/admin/webhooks").get_data(as_text=True)
    assert page.count("delivered") == 3


@pytest.fixture
def app_config(app_config):
    app_config["WEBHOOK_RETRY_SECONDS"] = 0.4
    app_config["WEBHOOK_MAX_FAILURES"] = 4
    return app_config


def test_a_failing_receiver_gets_retries_with_backoff_then_is_disabled(app, run_worker):
    console = owner_console(app)
    with Receiver(status=500) as receiver, app.app_context():
        endpoint_id, secret = add_endpoint(console, receiver.url, ["subscriber.unsubscribed"])
        add_subscribers(1, language="fr")
        unsubscribe(db.session.scalar(select(Subscriber)), method="link")
        db.session.commit()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run_worker()
            db.session.expire_all()
            if not db.session.get(WebhookEndpoint, endpoint_id).enabled:
                break
            time.sleep(0.05)
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        delivery = db.session.scalar(select(WebhookDelivery))
        assert not endpoint.enabled and endpoint.disabled_at is not None
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 4, 500)
        # Once disabled, new events are not queued for it and nothing more is posted.
        add_subscribers(1, language="fr", prefix="other")
        unsubscribe(
            db.session.scalars(select(Subscriber).order_by(Subscriber.id.desc())).first(),
            method="link",
        )
        db.session.commit()
        run_worker()
    times = [moment for moment, _h, _b in receiver.received]
    assert len(times) == 4
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    print("webhook retry gaps (s):", [round(gap, 2) for gap in gaps])
    for gap, expected in zip(gaps, (0.4, 0.8, 1.6), strict=True):
        assert gap >= expected * 0.95, gaps
    assert gaps[2] > gaps[1] > gaps[0]
    # The same message every time (receivers drop duplicates by webhook-id), signed afresh.
    assert len({headers["webhook-id"] for _t, headers, _b in receiver.received}) == 1
    assert all(verified(secret, h, b) for _t, h, b in receiver.received)
    page = console.get("/admin/webhooks").get_data(as_text=True)
    assert "Disabled on" in page and "after 4 failed deliveries in a row" in page
    # Enabling it again sends what was waiting... nothing here, but it is enabled and audited.
    post_form(console, "/admin/webhooks", f"/admin/webhooks/{endpoint_id}/enable", {})
    assert "Disabled on" not in console.get("/admin/webhooks").get_data(as_text=True)


def test_webhook_input_is_checked(app):
    console = owner_console(app)
    for data in (
        {"url": "ftp://x", "events": ["digest.sent"]},
        {"url": "https://example.org/h", "events": []},
        {"url": "https://example.org/h", "events": ["nope"]},
    ):
        response = post_form(console, "/admin/webhooks", "/admin/webhooks", data)
        assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(WebhookEndpoint)) is None
        assert emit_event("digest.sent", {"id": 1}) == 0
