"""Staff read what the feedback loop could not classify: an unknown inbound message's headers
and text, shown as text (escaped, never rendered as HTML), linked from the suppression page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.inbound.processor import receive
from newsletter.models import InboundKind, InboundMessage
from tests.support.feedback import BOUNCE_ADDRESS, malformed_messages
from tests.test_admin import log_in, make_user

HOSTILE = (
    b"From: =?utf-8?q?Ren=C3=A9e_<b>bold</b>?= <renee@example.net>\r\n"
    b"To: bounces@example.org\r\n"
    b'Subject: Question about "<script>alert(1)</script>"\r\n'
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="ALT"\r\n'
    b"\r\n"
    b"--ALT\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Bonjour, pourquoi re=C3=A7ois-je ceci ? <img src=3Dx onerror=3Dalert(2)>\r\n"
    b"--ALT\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Bonjour</p><script>alert(3)</script><iframe src='https://evil.example'></iframe>\r\n"
    b"--ALT--\r\n"
)


@pytest.fixture
def app_config(app_config):
    app_config["BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
    return app_config


@pytest.fixture
def staff_client(app):
    client = app.test_client()
    log_in(app, client, make_user(app, "editor@example.org", staff=True))
    return client


def stored(app, raw: bytes) -> int:
    with app.app_context():
        message_id, _outcome = receive("smtp", raw, recipients=[BOUNCE_ADDRESS])
        assert db.session.get(InboundMessage, message_id).kind == InboundKind.UNKNOWN
        return message_id


def test_staff_read_an_unknown_message_as_escaped_text(app, staff_client):
    message_id = stored(app, HOSTILE)
    listing = staff_client.get("/admin/suppressions").get_data(as_text=True)
    assert f'href="/admin/inbound/{message_id}"' in listing

    response = staff_client.get(f"/admin/inbound/{message_id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    # Headers, decoded (RFC 2047) and escaped.
    assert "Renée &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The text part, decoded from quoted-printable.
    assert "pourquoi reçois-je ceci ? &lt;img src=x onerror=alert(2)&gt;" in page
    # The HTML part is shown as its source, never rendered.
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert "&lt;iframe" in page
    for live in ("<script>alert", "<img src=x", "<iframe", "<b>bold"):
        assert live not in page


def test_a_malformed_message_is_shown_without_a_crash(app, staff_client):
    ids = [stored(app, raw) for raw in malformed_messages(10, BOUNCE_ADDRESS, seed=5) if raw]
    for message_id in ids:
        assert staff_client.get(f"/admin/inbound/{message_id}").status_code == 200


def test_understood_mail_has_no_copy_to_show(app, staff_client):
    from newsletter.domain.return_paths import ReturnPathCodec
    from tests.conftest import TEST_SECRET_KEY
    from tests.support.feedback import add_delivery, add_subscriber, dsn

    with app.app_context():
        gone = add_subscriber("gone@example.com")
        path = ReturnPathCodec(TEST_SECRET_KEY).address(
            BOUNCE_ADDRESS, "delivery", add_delivery(gone).id
        )
        message_id, _ = receive("smtp", dsn(path, gone.email, "5.1.1"), recipients=[path])
    page = staff_client.get(f"/admin/inbound/{message_id}").get_data(as_text=True)
    assert "5.1.1" in page and "bounced" in page
    assert "No copy is kept" in page


def test_the_inbound_message_page_is_for_staff_only(app, client):
    message_id = stored(app, HOSTILE)
    response = client.get(f"/admin/inbound/{message_id}")
    assert response.status_code in (302, 303, 401, 403)
    assert "renee" not in response.get_data(as_text=True)


def test_an_unknown_id_is_404(app, staff_client):
    with app.app_context():
        assert db.session.scalars(select(InboundMessage)).first() is None
    assert staff_client.get("/admin/inbound/12345").status_code == 404
