"""Issue 11, finding 1: RFC 2047 encoded words must not smuggle a line break into a header.

``=?utf-8?q?Big_news=0D=0AReply-To=3A_...?=`` has no control character, so it passed the input
checks; the email package's header factory decodes it, and CPython 3.11.7 / 3.12.1 fold the
decoded CR LF out raw (CVE-2024-6923): every digest carried the attacker's ``Reply-To``.
These tests read the mail back from the real SMTP server, on the Python this machine runs.
"""

from __future__ import annotations

import json

import pytest

from newsletter.extensions import db
from newsletter.mail.message import build_message_bytes, message_bytes
from newsletter.mail.prepared import build_template
from newsletter.mail.render import RenderedEmail
from newsletter.models import Digest, DigestStatus, utcnow
from tests.support.digests import add_release, add_subscribers, staff_token
from tests.support.reference_mail import build_message

INJECTION = "=?utf-8?q?Big_news=0D=0AReply-To=3A_attacker=40evil.example?="
# The same, folded inside a long subject (the fold is where the raw CR LF came out).
LONG_INJECTION = "x" * 70 + " " + INJECTION
BODY_INJECTION = (
    "=?utf-8?q?Hi=0D=0A=0D=0A--=3D_boundary=0D=0AContent-Type=3A_text/plain=0D=0A=0D=0Aowned?="
)


def header_block(data: bytes) -> list[bytes]:
    """The raw header lines of a message (continuation lines included)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def assert_no_injected_header(data: bytes) -> None:
    lines = header_block(data)
    names = [line.split(b":", 1)[0].lower() for line in lines if line[:1] not in (b" ", b"\t")]
    assert b"reply-to" not in names, lines
    assert b"content-type" in names and names.count(b"content-type") == 1, lines
    assert names.count(b"subject") == 1, lines


@pytest.mark.parametrize("subject", [INJECTION, LONG_INJECTION, BODY_INJECTION])
def test_serialisers_never_write_a_decoded_line_break_into_a_header(subject):
    rendered = RenderedEmail(subject=subject, text="body", html="<p>body</p>", language="en")
    outputs = [
        build_message_bytes(rendered, mail_from="News <news@example.org>", to="a@example.org"),
        build_template(rendered, mail_from="News <news@example.org>").replace(b"\x00", b"X"),
        message_bytes(
            build_message(rendered, mail_from="News <news@example.org>", to="a@example.org")
        ),
    ]
    for data in outputs:
        assert_no_injected_header(data)


def test_an_encoded_word_title_adds_no_header_and_no_part_to_a_digest(app, mailbox, run_worker):
    with app.app_context():
        addresses = add_subscribers(3, language="fr")
        # As stored before this fix (API, console, feed) or by any path that skips the checks.
        add_release(language="fr", title=INJECTION)
        add_release(language="fr", title=BODY_INJECTION)
        db.session.add(
            Digest(status=DigestStatus.SCHEDULED, paused=False, language="fr", send_at=utcnow())
        )
        db.session.commit()
    run_worker()
    messages = mailbox.wait_for(3)
    assert sorted(m.to for m in messages) == sorted(addresses)
    for received in messages:
        assert_no_injected_header(received.data)
        message = received.message
        assert message["Reply-To"] is None
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])


def test_a_test_send_subject_cannot_replace_the_body(app, client, mailbox, run_worker):
    with app.app_context():
        token = staff_token()
        add_release(language="en", title="Plain title")
        digest = Digest(
            status=DigestStatus.SCHEDULED,
            paused=True,
            language="en",
            send_at=utcnow(),
            subject=BODY_INJECTION,
        )
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
    response = client.post(
        f"/api/v1/digests/{digest_id}/test-send",
        json={"email": "editor@example.org"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    run_worker()
    (received,) = mailbox.wait_for(1)
    assert_no_injected_header(received.data)
    message = received.message
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "owned" not in received.text
    assert str(message["Subject"]).startswith("[TEST]")


def test_encoded_word_syntax_is_refused_in_titles_and_subjects(app, client):
    with app.app_context():
        token = staff_token()
    auth = {"Authorization": f"Bearer {token}"}
    release = {
        "title": INJECTION,
        "summary": "s",
        "body": "<p>b</p>",
        "url": "https://example.org/r",
        "language": "en",
        "published_at": "2026-01-01T00:00:00Z",
    }
    response = client.post("/api/v1/releases", json=release, headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "title" in response.get_json()["error"]["fields"]
    response = client.post(
        "/api/v1/digests", json={"language": "en", "subject": INJECTION}, headers=auth
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "subject" in response.get_json()["error"]["fields"]
    # An ordinary "=?" (no encoded word) is still fine.
    release["title"] = "Does 1 =? 2 hold"
    assert client.post("/api/v1/releases", json=release, headers=auth).status_code == 201


def test_feed_import_skips_an_entry_whose_title_is_an_encoded_word(app, runner, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><guid>a</guid><title>{INJECTION}</title><link>https://example.org/a</link></item>"
        "<item><guid>b</guid><title>Fine</title><link>https://example.org/b</link></item>"
        "</channel></rss>"
    )
    result = runner.invoke(args=["releases", "import", str(feed)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from sqlalchemy import select

        from newsletter.models import Release

        titles = db.session.scalars(select(Release.title)).all()
    assert titles == ["Fine"], json.dumps(titles)
