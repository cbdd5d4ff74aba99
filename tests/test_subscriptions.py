"""Double opt-in subscriptions, end to end through a real SMTP server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
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

    page = client.post(path_of(links[0]))
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
    assert "<mailto:news@example.org?subject=unsubscribe>" in welcome.header("List-Unsubscribe")
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


# --- helpers -------------------------------------------------------------------------------


def subscribe_json(client, **body):
    return client.post("/api/v1/subscriptions", json=body)


def count(model) -> int:
    return db.session.scalar(select(func.count(model.id)))


def only_subscriber() -> Subscriber:
    [row] = db.session.scalars(select(Subscriber)).all()
    return row


def confirmation_link(mailbox, run_worker) -> str:
    run_worker()
    [message] = mailbox.wait_for(1)
    [link] = message.links()
    return path_of(link)


# --- subscribing ---------------------------------------------------------------------------


def test_form_subscription_records_consent_and_answers_with_a_page(app, client):
    response = client.post(
        "/subscribe",
        data={"email": "visitor@example.org", "name": "Ann", "page": "https://site.example/news"},
        headers={"User-Agent": "TestBrowser/1.0", "Accept-Language": "en-GB,en;q=0.9"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert response.status_code == 202
    assert "Check your inbox" in response.get_data(as_text=True)
    with app.app_context():
        row = only_subscriber()
        assert row.status == SubscriberStatus.PENDING
        assert row.language == "en"  # from Accept-Language, since the form did not say
        assert row.name == "Ann"
        assert row.consent_ip == "203.0.113.7"
        assert row.consent_page == "https://site.example/news"
        assert row.consent_user_agent == "TestBrowser/1.0"
        assert row.consent_source == "form"
        assert row.consent_at is not None


def test_language_from_the_form_wins_over_accept_language(app, client):
    subscribe_json(client, email="a@example.org", language="fr")
    with app.app_context():
        assert only_subscriber().language == "fr"


def test_same_answer_whatever_the_address_state(app, client, mailbox, run_worker):
    first = subscribe_json(client, email="known@example.org")
    link = confirmation_link(mailbox, run_worker)
    client.post(link)
    again = subscribe_json(client, email="KNOWN@example.org")
    unknown = subscribe_json(client, email="unknown@example.org")
    assert first.status_code == again.status_code == unknown.status_code == 202
    assert first.get_json() == again.get_json() == unknown.get_json() == {"status": "pending"}
    with app.app_context():
        known = subscriber("known@example.org")
        assert known.status == SubscriberStatus.CONFIRMED  # a repeat subscribe changes nothing


def test_repeated_subscribes_keep_one_row_and_cap_confirmation_emails(
    app, client, mailbox, run_worker
):
    for _ in range(6):
        assert subscribe_json(client, email="Repeat@Example.org").status_code == 202
    with app.app_context():
        assert count(Subscriber) == 1
        assert count(OutboxMessage) == 3  # CONFIRMATIONS_PER_ADDRESS_PER_DAY
    run_worker()
    assert len(mailbox.wait_for(3)) == 3


def test_simultaneous_subscribes_for_one_new_address_all_succeed(app, mailbox, run_worker):
    """Several requests for the same new address at once (a double click, a retrying client):
    the database settles them on the unique key, so none fails and one row results."""
    barrier = threading.Barrier(8)

    def post() -> int:
        with app.test_client() as own_client:
            barrier.wait()
            return subscribe_json(own_client, email="Twice@Example.org").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: post(), range(8)))
    assert statuses == [202] * 8
    with app.app_context():
        row = only_subscriber()
        assert (row.email_key, row.status) == ("twice@example.org", SubscriberStatus.PENDING)
        queued = db.session.execute(select(OutboxMessage.recipient_key, OutboxMessage.kind)).all()
        # At least one confirmation, all of them for this address. The daily cap is checked
        # per request, so simultaneous requests may each pass it: a cap, not an exact count.
        assert queued and set(queued) == {("twice@example.org", "subscription_confirm")}
    run_worker()
    assert {message.to for message in mailbox.wait_for(1)} == {"Twice@example.org"}


def test_internationalised_address_is_accepted_and_delivered(app, client, mailbox, run_worker):
    response = subscribe_json(client, email="José.Müller@exämple.org")
    assert response.status_code == 202
    with app.app_context():
        row = only_subscriber()
        assert row.email == "José.Müller@exämple.org"
        assert row.email_key == "josé.müller@exämple.org"
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "José.Müller" in message.to


def test_confirmed_address_is_not_sent_another_confirmation(app, client, mailbox, run_worker):
    subscribe_json(client, email="done@example.org")
    client.post(confirmation_link(mailbox, run_worker))
    run_worker()  # welcome email
    mailbox.clear()
    subscribe_json(client, email="done@example.org")
    run_worker()
    assert mailbox.messages == []


def test_unsubscribed_reader_can_subscribe_again_with_a_new_confirmation(
    app, client, mailbox, run_worker
):
    subscribe_json(client, email="back@example.org")
    client.post(confirmation_link(mailbox, run_worker))
    with app.app_context():
        row = subscriber("back@example.org")
        row.status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    run_worker()
    mailbox.clear()
    subscribe_json(client, email="back@example.org")
    link = confirmation_link(mailbox, run_worker)
    with app.app_context():
        assert subscriber("back@example.org").status == SubscriberStatus.PENDING
    assert client.post(link).status_code == 200
    with app.app_context():
        assert subscriber("back@example.org").status == SubscriberStatus.CONFIRMED


def test_honeypot_answers_as_usual_and_stores_nothing(app, client, mailbox, run_worker):
    response = client.post("/subscribe", data={"email": "bot@example.org", "website": "spam"})
    assert response.status_code == 202
    api = subscribe_json(client, email="bot@example.org", website="http://spam")
    assert api.status_code == 202
    with app.app_context():
        assert count(Subscriber) == 0
        assert count(OutboxMessage) == 0


def test_per_ip_rate_limit_on_subscribe(app, client):
    statuses = [subscribe_json(client, email=f"r{i}@example.org").status_code for i in range(12)]
    assert statuses[:10] == [202] * 10
    assert statuses[10] == 429
    body = subscribe_json(client, email="more@example.org").get_json()
    assert body["error"]["code"] == "rate_limited"


def test_rate_limit_can_be_turned_off(make_app):
    application = make_app(RATELIMIT_ENABLED=False)
    client = application.test_client()
    statuses = {
        client.post("/api/v1/subscriptions", json={"email": f"x{i}@example.org"}).status_code
        for i in range(15)
    }
    assert statuses == {202}


# --- cross-site posts ----------------------------------------------------------------------


def test_cross_site_form_post_is_refused_from_unknown_origins(app, client):
    response = client.post(
        "/subscribe", data={"email": "x@example.org"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    with app.app_context():
        assert count(Subscriber) == 0


def test_cross_site_form_post_is_accepted_from_allowed_origins(make_app):
    application = make_app(ALLOWED_ORIGINS=["https://www.site.example"])
    client = application.test_client()
    response = client.post(
        "/subscribe",
        data={"email": "x@example.org"},
        headers={"Origin": "https://www.site.example"},
    )
    assert response.status_code == 202
    with application.app_context():
        assert count(Subscriber) == 1


def test_embeddable_form_can_be_framed_only_by_allowed_origins(app, client):
    page = client.get("/subscribe/embed")
    assert page.status_code == 200
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    assert client.get("/subscribe").headers["X-Frame-Options"] == "DENY"
    assert 'name="email"' in page.get_data(as_text=True)


# --- bad input -----------------------------------------------------------------------------

BAD_ADDRESSES = [
    "",
    "not-an-address",
    "two@@example.org",
    "a@b",
    "spaces in@example.org",
    "a" * 250 + "@example.org",  # oversized
    "x@" + "d" * 300 + ".org",
    "victim@example.org\r\nBcc: everyone@example.org",
    "victim@example.org\nX-Injected: yes",
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_malformed_addresses_get_422_with_the_email_field_and_store_nothing(app, client, address):
    response = subscribe_json(client, email=address)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["email"]
    form = client.post("/subscribe", data={"email": address})
    assert form.status_code == 422
    assert "This email address is not valid" in form.get_data(
        as_text=True
    ) or "n’est pas valide" in form.get_data(as_text=True)
    with app.app_context():
        assert count(Subscriber) == 0
        assert count(OutboxMessage) == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "ok@example.org", "name": "Ann\r\nBcc: x@example.org"}, "name"),
        ({"email": "ok@example.org", "name": "x" * 201}, "name"),
        ({"email": "ok@example.org", "language": "de"}, "language"),
        ({"email": "ok@example.org", "language": "fr\r\n"}, "language"),
        ({"email": ["ok@example.org"]}, "email"),
        ({"email": 12}, "email"),
        ({"email": "ok@example.org", "name": {"first": "x"}}, "name"),
        ({"email": "ok@example.org", "language": 3}, "language"),
    ],
)
def test_bad_fields_are_named_and_nothing_is_stored(app, client, body, field):
    response = subscribe_json(client, **body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    with app.app_context():
        assert count(Subscriber) == 0
        assert count(OutboxMessage) == 0


def test_one_megabyte_body_is_refused_with_413(app, client):
    big = "x" * (1024 * 1024)
    response = client.post("/api/v1/subscriptions", json={"email": "a@example.org", "name": big})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    form = client.post("/subscribe", data={"email": "a@example.org", "name": big})
    assert form.status_code == 413
    with app.app_context():
        assert count(Subscriber) == 0


@pytest.mark.parametrize(
    "data, content_type, status, code",
    [
        ("email=a@example.org", "text/plain", 415, "unsupported_media_type"),
        ("<email>a@example.org</email>", "application/xml", 415, "unsupported_media_type"),
        ("email=a@example.org", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("{not json", "application/json", 400, "malformed_json"),
        ('["a@example.org"]', "application/json", 400, "malformed_json"),
        ('"a@example.org"', "application/json", 400, "malformed_json"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "malformed_json"),
    ],
)
def test_wrong_content_types_and_malformed_json_get_clear_errors(
    app, client, data, content_type, status, code
):
    response = client.post("/api/v1/subscriptions", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    with app.app_context():
        assert count(Subscriber) == 0


def test_form_route_answers_json_when_the_body_is_json(app, client):
    response = client.post("/subscribe", json={"email": "json@example.org"})
    assert response.status_code == 202
    assert response.get_json() == {"status": "pending"}
    bad = client.post("/subscribe", json={"email": "nope"})
    assert bad.status_code == 422
    assert "email" in bad.get_json()["error"]["fields"]


def test_unknown_routes_and_methods_answer_json_errors(app, client):
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"
    response = client.get("/api/v1/subscriptions")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# --- confirmation links --------------------------------------------------------------------


def signed_long_ago(purpose, data, *, days: int) -> str:
    """A genuine token whose signature is ``days`` old."""
    import time

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from tests.conftest import TEST_SECRET_KEY

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - days * 86400

    return URLSafeTimedSerializer(TEST_SECRET_KEY, salt=purpose.salt, signer=PastSigner).dumps(data)


def pending_subscriber_token_data(app, email="late@example.org"):
    from newsletter.config import CONFIRM_SUBSCRIPTION
    from newsletter.delivery.signing import app_signer

    with app.app_context():
        row = subscriber(email)
        signer = app_signer()
        return {"s": row.id, "f": signer.fingerprint(CONFIRM_SUBSCRIPTION.salt, row.email_key)}


def test_reused_confirmation_link_is_harmless(app, client, mailbox, run_worker):
    subscribe_json(client, email="twice@example.org", language="en")
    link = confirmation_link(mailbox, run_worker)
    assert client.post(link).status_code == 200
    second = client.post(link)
    assert second.status_code == 200
    assert "already confirmed" in second.get_data(as_text=True)
    run_worker()
    with app.app_context():
        assert subscriber("twice@example.org").status == SubscriberStatus.CONFIRMED
        # One welcome email, not two.
        welcome = db.session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "subscription_welcome")
        )
        assert welcome == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: token[:10],
        lambda token: "x" + token,
        lambda token: token.replace(".", "!", 1),
        lambda token: "a" * 5000,
        lambda token: "%00%0d%0a",
    ],
)
def test_tampered_confirmation_links_show_a_clear_page(app, client, mailbox, run_worker, mangle):
    subscribe_json(client, email="tamper@example.org", language="en")
    link = confirmation_link(mailbox, run_worker)
    token = link.rsplit("/", 1)[1]
    response = client.get("/subscribe/confirm/" + mangle(token), headers={"Accept-Language": "en"})
    assert response.status_code in (400, 404)
    assert "not valid" in response.get_data(as_text=True) or response.status_code == 404
    with app.app_context():
        assert subscriber("tamper@example.org").status == SubscriberStatus.PENDING


def test_wrong_purpose_token_does_not_confirm(app, client):
    from newsletter.delivery.signing import app_signer
    from newsletter.domain.subscriptions import unsubscribe_token

    subscribe_json(client, email="purpose@example.org")
    with app.app_context():
        row = subscriber("purpose@example.org")
        # A genuine token for the same subscriber, signed for another purpose.
        token = unsubscribe_token(app_signer(), row.id, row.email_key)
    response = client.get(f"/subscribe/confirm/{token}")
    assert response.status_code == 400
    with app.app_context():
        assert subscriber("purpose@example.org").status == SubscriberStatus.PENDING


def test_expired_confirmation_link_offers_a_new_one(app, client, mailbox, run_worker):
    from newsletter.config import CONFIRM_SUBSCRIPTION

    subscribe_json(client, email="late@example.org", language="en")
    run_worker()
    mailbox.clear()
    token = signed_long_ago(CONFIRM_SUBSCRIPTION, pending_subscriber_token_data(app), days=8)
    page = client.get(f"/subscribe/confirm/{token}")
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "This link has expired" in text
    assert f"/subscribe/confirm/{token}/renew" in text
    with app.app_context():
        assert subscriber("late@example.org").status == SubscriberStatus.PENDING

    renewed = client.post(f"/subscribe/confirm/{token}/renew")
    assert renewed.status_code == 202
    run_worker()
    [message] = mailbox.wait_for(1)
    [fresh_link] = message.links()
    assert client.post(path_of(fresh_link)).status_code == 200
    with app.app_context():
        assert subscriber("late@example.org").status == SubscriberStatus.CONFIRMED


def test_confirmation_link_dies_when_the_address_changes(app, client, mailbox, run_worker):
    subscribe_json(client, email="moving@example.org")
    link = confirmation_link(mailbox, run_worker)
    with app.app_context():
        row = subscriber("moving@example.org")
        row.email = row.email_key = "moved@example.org"
        db.session.commit()
    assert client.post(link).status_code == 400
    with app.app_context():
        assert subscriber("moved@example.org").status == SubscriberStatus.PENDING


def test_old_confirmation_link_cannot_resubscribe_someone_who_left(
    app, client, mailbox, run_worker
):
    subscribe_json(client, email="left@example.org")
    link = confirmation_link(mailbox, run_worker)
    client.post(link)
    with app.app_context():
        row = subscriber("left@example.org")
        row.status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    response = client.post(link)
    assert response.status_code == 400
    with app.app_context():
        assert subscriber("left@example.org").status == SubscriberStatus.UNSUBSCRIBED


def test_confirm_page_speaks_the_subscribers_language(app, client, mailbox, run_worker):
    subscribe_json(client, email="fr@example.org", language="fr")
    link = confirmation_link(mailbox, run_worker)
    [message] = mailbox.messages
    assert "Confirmez votre abonnement" in message.header("Subject")
    assert message.header("Content-Language") == "fr"
    page = client.post(link, headers={"Accept-Language": "en"})
    assert "Votre abonnement est confirmé" in page.get_data(as_text=True)


# --- unsubscribing -------------------------------------------------------------------------


def confirmed_reader(app, client, mailbox, run_worker, email="reader@example.org"):
    """Subscribe and confirm; returns the unsubscribe URL path from the welcome email."""
    subscribe_json(client, email=email, language="en")
    client.post(confirmation_link(mailbox, run_worker))
    mailbox.clear()
    run_worker()
    [welcome] = mailbox.wait_for(1)
    mailbox.clear()
    return path_of(welcome.header("List-Unsubscribe").split(",")[0].strip(" <>"))


def test_unsubscribe_page_has_one_button_and_get_changes_nothing(app, client, mailbox, run_worker):
    path = confirmed_reader(app, client, mailbox, run_worker)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count("<button") == 1
    assert 'method="post"' in html
    with app.app_context():
        assert subscriber("reader@example.org").status == SubscriberStatus.CONFIRMED
    done = client.post(path)  # the button
    assert done.status_code == 200
    assert "You are unsubscribed" in done.get_data(as_text=True)
    with app.app_context():
        row = subscriber("reader@example.org")
        assert row.status == SubscriberStatus.UNSUBSCRIBED
        assert row.unsubscribe_method == "link"
        assert row.unsubscribed_at is not None


def test_one_click_accepts_multipart_bodies_without_redirect(app, client, mailbox, run_worker):
    path = confirmed_reader(app, client, mailbox, run_worker)
    response = app.test_client().post(
        path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert response.status_code == 200
    assert "Location" not in response.headers
    with app.app_context():
        assert subscriber("reader@example.org").unsubscribe_method == "one-click"
    # Doing it again is harmless.
    assert (
        app.test_client()
        .post(
            path,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        .status_code
        == 200
    )


def test_tampered_unsubscribe_link_changes_nothing(app, client, mailbox, run_worker):
    path = confirmed_reader(app, client, mailbox, run_worker)
    bad = path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")
    assert client.get(bad).status_code == 400
    response = client.post(
        bad, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    with app.app_context():
        assert subscriber("reader@example.org").status == SubscriberStatus.CONFIRMED


def test_confirmation_token_cannot_unsubscribe(app, client, mailbox, run_worker):
    subscribe_json(client, email="reader@example.org")
    link = confirmation_link(mailbox, run_worker)
    token = link.rsplit("/", 1)[1]
    client.post(link)
    response = client.post(
        f"/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    with app.app_context():
        assert subscriber("reader@example.org").status == SubscriberStatus.CONFIRMED


def test_preferences_page_changes_language_and_lets_the_reader_leave(
    app, client, mailbox, run_worker
):
    subscribe_json(client, email="prefs@example.org", language="en")
    client.post(confirmation_link(mailbox, run_worker))
    mailbox.clear()
    run_worker()
    [welcome] = mailbox.wait_for(1)
    [preferences] = [link for link in welcome.links() if "/preferences/" in link]
    path = path_of(preferences)
    page = client.get(path)
    assert page.status_code == 200
    assert "prefs@example.org" in page.get_data(as_text=True)
    saved = client.post(path, data={"action": "save", "language": "fr"})
    assert saved.status_code == 200
    assert "Vos préférences sont enregistrées" in saved.get_data(as_text=True)
    with app.app_context():
        assert subscriber("prefs@example.org").language == "fr"
    bad = client.post(path, data={"action": "save", "language": "xx"})
    assert bad.status_code == 422
    left = client.post(path, data={"action": "leave"})
    assert left.status_code == 200
    with app.app_context():
        row = subscriber("prefs@example.org")
        assert row.status == SubscriberStatus.UNSUBSCRIBED
        assert row.unsubscribe_method == "preferences"
        assert row.language == "fr"
    assert client.get(path[:-4] + "AAAA").status_code == 400


def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "up"


def test_address_errors_speak_the_readers_language(app, client):
    french = client.post("/subscribe", data={"email": "a@b"}, headers={"Accept-Language": "fr"})
    assert french.status_code == 422
    assert "Cette adresse e-mail n’est pas valide." in french.get_data(as_text=True)
    english = client.post(
        "/api/v1/subscriptions", json={"email": "a@b"}, headers={"Accept-Language": "en"}
    )
    # In English the validator's precise reason is given.
    assert "period" in english.get_json()["error"]["fields"]["email"]
    long_name = client.post(
        "/api/v1/subscriptions",
        json={"email": "ok@example.org", "name": "x" * 201},
        headers={"Accept-Language": "fr"},
    )
    assert long_name.get_json()["error"]["fields"]["name"] == "Au plus 200 caractères."


def test_renewing_an_expired_link_respects_the_daily_cap(app, client, mailbox, run_worker):
    from newsletter.config import CONFIRM_SUBSCRIPTION

    for _ in range(3):
        subscribe_json(client, email="late@example.org")
    token = signed_long_ago(CONFIRM_SUBSCRIPTION, pending_subscriber_token_data(app), days=8)
    assert client.post(f"/subscribe/confirm/{token}/renew").status_code == 202
    with app.app_context():
        assert count(OutboxMessage) == 3  # the cap holds for renewals too
