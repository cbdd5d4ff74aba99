"""Digest composition and the email itself, checked at a real SMTP server."""

from __future__ import annotations

import email
from datetime import datetime, timedelta
from email.policy import default as default_policy
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.delivery.digests import run_digest
from newsletter.domain.digest_composition import releases_for_digest
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from newsletter.mail.prepared import (
    UNSUBSCRIBE_MARKER,
    PreparedMessage,
    Recipient,
    build_template,
)
from newsletter.mail.render import RenderedEmail
from newsletter.models import Delivery, DigestStatus, Subscriber, SubscriberStatus, utcnow
from tests.support.digests import add_release, add_subscribers, digest_row


def schedule_now(language: str, **values) -> int:
    digest = create_digest({"language": language, **values})
    db.session.commit()
    return digest.id


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_a_digest_reaches_every_confirmed_subscriber_of_its_language_once(
    app, client, mailbox, run_worker
):
    with app.app_context():
        confirmed = add_subscribers(3, language="fr")
        add_subscribers(2, language="en")
        add_subscribers(1, language="fr", status=SubscriberStatus.PENDING)
        add_subscribers(1, language="fr", status=SubscriberStatus.UNSUBSCRIBED)
        add_subscribers(1, language="fr", status=SubscriberStatus.BOUNCED)
        add_release(
            language="fr",
            title="Lancement du portail vidéo",
            dateline="Bruxelles",
            summary="Les journalistes accèdent aux vidéos en haute définition.",
            url="https://example.org/portail",
            image_url="https://example.org/portail.jpg",
            video_url="https://example.org/portail.mp4",
            published_at=utcnow() - timedelta(hours=2),
        )
        add_release(language="en", title="English only")
        digest_id = schedule_now("fr")

    run_worker()
    messages = mailbox.wait_for(3)
    assert sorted(m.to for m in messages) == sorted(confirmed)
    assert len(mailbox.messages) == 3

    message_ids = set()
    for message in messages:
        assert message.message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.message.iter_parts()] == [
            "text/plain",
            "text/html",
        ]
        assert message.header("Date")
        message_ids.add(message.header("Message-ID"))
        assert message.header("Content-Language") == "fr"
        assert message.header("To") == message.to
        assert message.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
        assert message.header("List-Id") == "<newsletter.localhost>"
        assert message.header("Auto-Submitted") == "auto-generated"
        unsubscribe, mailto = [
            part.strip(" <>") for part in message.header("List-Unsubscribe").split(",")
        ]
        assert unsubscribe.startswith("https://news.example.org/unsubscribe/")
        assert mailto.startswith("mailto:")
        assert unsubscribe in message.text
        assert f'href="{unsubscribe}"' in message.html
        assert "Lancement du portail vidéo" in message.header("Subject")
        assert "Lancement du portail vidéo" in message.text
        assert "Bruxelles" in message.text
        assert "Lire la suite : https://example.org/portail" in message.text
        assert "Vidéo : https://example.org/portail.mp4" in message.text
        assert 'href="https://example.org/portail"' in message.html
        assert 'src="https://example.org/portail.jpg"' in message.html
        assert "English only" not in message.text
        assert "Se désabonner" in message.text or "désabonner" in message.html
        assert "<style" not in message.html  # CSS is inlined
        assert 'style="' in message.html
    assert len(message_ids) == 3

    with app.app_context():
        digest = digest_row(digest_id)
        assert (digest.status, digest.recipients, digest.sent, digest.failed) == (
            DigestStatus.SENT,
            3,
            3,
            0,
        )
        assert [release.title for release in digest.releases] == ["Lancement du portail vidéo"]
        assert digest.rendered_message is not None

    # Each link belongs to its reader: one-click unsubscribes exactly that address.
    first = messages[0]
    link = first.header("List-Unsubscribe").split(",")[0].strip(" <>")
    response = app.test_client().post(
        path_of(link),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    with app.app_context():
        statuses = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert statuses[first.to] == SubscriberStatus.UNSUBSCRIBED
        assert sum(1 for s in statuses.values() if s == SubscriberStatus.UNSUBSCRIBED) == 2


def test_no_new_release_means_skipped_and_nothing_sent(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(2, language="en")
        add_release(language="fr", title="Only French news")
        digest_id = schedule_now("en")
    run_worker()
    with app.app_context():
        digest = digest_row(digest_id)
        assert digest.status == DigestStatus.SKIPPED
        assert digest.finished_at is not None
        assert db.session.scalar(select(func.count(Delivery.id))) == 0
    assert mailbox.messages == []


def test_a_digest_carries_only_what_was_published_since_the_last_one_sent(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(1, language="en")
        add_release(language="en", title="Old news", published_at=utcnow() - timedelta(hours=3))
        first = schedule_now("en")
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "Old news" in message.text

    mailbox.clear()
    with app.app_context():
        assert digest_row(first).status == DigestStatus.SENT
        add_release(language="en", title="Fresh news", published_at=utcnow())
        second = schedule_now("en")
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "Fresh news" in message.text and "Old news" not in message.text
    with app.app_context():
        assert digest_row(second).status == DigestStatus.SENT
        # And with nothing newer, the third run is skipped.
        third = schedule_now("en")
    run_worker()
    with app.app_context():
        assert digest_row(third).status == DigestStatus.SKIPPED


def test_the_first_digest_looks_back_the_configured_window(app):
    app.config["DIGEST_FIRST_WINDOW_DAYS"] = 2
    now = utcnow()
    with app.app_context():
        add_release(language="fr", title="Three days ago", published_at=now - timedelta(days=3))
        add_release(language="fr", title="Yesterday", published_at=now - timedelta(days=1))
        add_release(language="fr", title="Tomorrow", published_at=now + timedelta(days=1))
        titles = [r.title for r in releases_for_digest("fr", now, first_window_days=2)]
        assert titles == ["Yesterday"]


def test_english_digest_speaks_english_with_english_dates(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(1, language="en")
        add_release(
            language="en",
            title="Budget presented",
            dateline="Ghent",
            published_at=datetime(2026, 3, 4, 10, 0),
        )
        app.config["DIGEST_FIRST_WINDOW_DAYS"] = 100000
        schedule_now("en")
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.header("Content-Language") == "en"
    assert "News releases of" in message.text
    assert "Ghent, March 4, 2026" in message.text
    assert "Unsubscribe: https://news.example.org/unsubscribe/" in message.text
    assert "Budget presented" in message.header("Subject")


def test_french_dates_are_written_the_french_way(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(1, language="fr")
        add_release(language="fr", title="Budget", published_at=datetime(2026, 3, 4, 10, 0))
        app.config["DIGEST_FIRST_WINDOW_DAYS"] = 100000
        schedule_now("fr", subject="Les communiqués de la semaine")
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "4 mars 2026" in message.text
    assert message.header("Subject") == "Les communiqués de la semaine"


def test_release_text_is_escaped_in_html_and_names_are_encoded(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(1, language="en", prefix="zoe")
        row = db.session.scalar(select(Subscriber))
        row.name = 'Zoë "the editor" <Dupont>'
        db.session.commit()
        add_release(language="en", title="<script>alert(1)</script> & co", summary="a < b")
        schedule_now("en")
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in message.html
    assert "<script>alert(1)</script> & co" in message.text
    raw_headers = message.data.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()
    assert "Zoë" in message.header("To") and "zoe-0@example.org" in message.header("To")


def test_a_digest_due_later_is_not_started_early(app):
    with app.app_context():
        add_release(language="fr")
        digest = create_digest(
            {"language": "fr", "send_at": (utcnow() + timedelta(hours=1)).isoformat()}
        )
        db.session.commit()
        assert run_digest(digest.id).result == "not_due"
        assert digest_row(digest.id).status == DigestStatus.SCHEDULED


def test_a_digest_starts_once_however_often_it_is_fired(app, mailbox, run_worker):
    with app.app_context():
        add_subscribers(2, language="fr")
        add_release(language="fr")
        digest_id = schedule_now("fr")
        assert run_digest(digest_id).result == "sending"
        assert run_digest(digest_id).result == "not_due"
        assert db.session.scalar(select(func.count(Delivery.id))) == 2
    run_worker()
    assert len(mailbox.wait_for(2)) == 2
    run_worker()
    assert len(mailbox.messages) == 2


# ---------------------------------------------------------------------------------------------
# Personalisation by substitution


@pytest.mark.parametrize(
    "url",
    [
        "https://news.example.org/unsubscribe/short",
        "https://news.example.org/unsubscribe/" + "x" * 300,
        "https://news.example.org/unsubscribe/tok?lang=fr&from=digest",
    ],
)
def test_personalised_bytes_decode_to_the_same_text_with_the_recipient_link(url):
    text = "Bonjour,\n\n. une ligne qui commence par un point\nDésabonnement : " + (
        UNSUBSCRIBE_MARKER + "\n" + "x" * 200 + " \n"
    )
    html = f'<p>Été</p><a href="{UNSUBSCRIBE_MARKER}">Se désabonner</a>'
    template = build_template(
        RenderedEmail(subject="Sujet — été", text=text, html=html, language="fr"),
        mail_from="Rédaction <news@example.org>",
        headers={"List-Id": "<list.example.org>"},
        mailto_unsubscribe="mailto:unsubscribe@example.org",
    )
    prepared = PreparedMessage(template)
    data = prepared.personalise(
        Recipient(address="reader@example.org", name="Zoë", unsubscribe_url=url, message_id="<m@x>")
    )
    assert b"\x00" not in data
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = email.message_from_bytes(data, policy=default_policy)
    plain, rich = (part.get_content().replace("\r\n", "\n") for part in message.iter_parts())
    assert plain == text.replace(UNSUBSCRIBE_MARKER, url)
    assert rich == html.replace(UNSUBSCRIBE_MARKER, url.replace("&", "&amp;"))
    assert str(message["Subject"]) == "Sujet — été"
    assert str(message["List-Unsubscribe"]) == f"<{url}>, <mailto:unsubscribe@example.org>"
    assert str(message["Message-ID"]) == "<m@x>"
    assert str(message["From"]) == "Rédaction <news@example.org>"


def test_a_template_never_takes_a_line_break_in_a_header():
    with pytest.raises(ValueError):
        build_template(
            RenderedEmail(subject="a\r\nBcc: x@example.org", text="t", html="h", language="en"),
            mail_from="news@example.org",
        )


# ---------------------------------------------------------------------------------------------
# Command line


def test_digests_commands_send_now_status_and_list(app, runner, mailbox, run_worker):
    with app.app_context():
        add_subscribers(3, language="en")
        add_release(language="en", title="Command line news")
    result = runner.invoke(args=["digests", "send-now", "--language", "en"])
    assert result.exit_code == 0, result.output
    assert "sending: 3 recipients, 0 sent, 0 failed, 3 pending" in result.output
    digest_id = int(result.output.split()[1])

    listing = runner.invoke(args=["digests", "list"])
    assert listing.exit_code == 0
    assert "Command line news" in listing.output and "sending" in listing.output

    run_worker()
    assert len(mailbox.wait_for(3)) == 3
    status = runner.invoke(args=["digests", "status", str(digest_id)])
    assert status.exit_code == 0
    assert f"digest {digest_id} [en] sent: 3 recipients, 3 sent, 0 failed, 0 pending" in (
        status.output
    )
    missing = runner.invoke(args=["digests", "status", "999"])
    assert missing.exit_code != 0 and "no digest 999" in missing.output
    nothing_new = runner.invoke(args=["digests", "send-now", "--language", "en"])
    assert "skipped" in nothing_new.output


def test_digests_status_shows_a_progress_bar_while_sending(app, runner, mailbox):
    import threading

    from newsletter.delivery.digests import DigestSendingPool

    app.config["SEND_MAX_RATE"] = 40
    with app.app_context():
        add_subscribers(20, language="fr")
        add_release(language="fr")
        digest_id = schedule_now("fr")
        assert run_digest(digest_id).result == "sending"
    sender = threading.Thread(target=DigestSendingPool(app).run_until_idle)
    sender.start()
    try:
        result = runner.invoke(args=["digests", "status", str(digest_id)])
    finally:
        sender.join(30)
    assert result.exit_code == 0, result.output
    # click draws the bar on a terminal; here it shows its label, then the final counts.
    label, final = result.output.strip().splitlines()[-2:]
    assert label.startswith("sending")
    assert final == f"digest {digest_id} [fr] sent: 20 recipients, 20 sent, 0 failed, 0 pending"
