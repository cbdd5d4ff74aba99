"""The bounce mailbox, read over IMAP from a real dovecot: the same cases as the listener, and
handled mail leaves the folder for ``Processed`` only once it is stored."""

from __future__ import annotations

import os
import ssl
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from newsletter.config import BOUNCE_MAILBOX_DONE_FOLDER
from newsletter.extensions import db
from newsletter.inbound.imap import MailboxUrlError, parse_mailbox_url, poll_bounce_mailbox
from newsletter.models import InboundKind, InboundMessage, Suppression
from tests.conftest import free_port
from tests.support import feedback
from tests.support.dovecot import DOVECOT, Dovecot

pytestmark = pytest.mark.verp


def _require_dovecot() -> None:
    if not Path(DOVECOT).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("dovecot is missing: .ci/run installs dovecot-imapd")
        pytest.skip("dovecot (dovecot-imapd) is not installed")


def _running_dovecot(**options):
    _require_dovecot()
    server = Dovecot(free_port(), **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot():
    yield from _running_dovecot()


@pytest.fixture
def dovecot_tls(certificate):
    """dovecot speaking imaps only (implicit TLS, port 993's protocol) with that certificate."""
    yield from _running_dovecot(tls=certificate)


def url_trusting_its_certificate(server: Dovecot) -> str:
    """The imaps URL of ``server`` with its self-signed certificate as the CA file."""
    cert, _key = server.tls
    return f"{server.url}?cafile={quote(str(cert), safe='')}"


def test_mailbox_urls_are_parsed_and_bad_ones_refused():
    settings = parse_mailbox_url("imaps://b%40x:p%2Fw@mail.example.org/Bounces")
    assert (settings.secure, settings.host, settings.port) == (True, "mail.example.org", 993)
    assert (settings.user, settings.password, settings.folder) == ("b@x", "p/w", "Bounces")
    assert parse_mailbox_url("imap://u:p@h:1143").folder == "INBOX"
    assert parse_mailbox_url("imaps://u:p@h/INBOX").cafile is None
    assert parse_mailbox_url("imaps://u:p@h/INBOX?cafile=%2Fetc%2Fca.pem").cafile == "/etc/ca.pem"
    for bad in (
        "http://u:p@h/INBOX",
        "imap://h/INBOX",
        "imap://u@h/INBOX",
        "imap:///x",
        "imaps://u:p@h/INBOX?cafle=/etc/ca.pem",  # a misspelt key is not silently ignored
    ):
        with pytest.raises(MailboxUrlError):
            parse_mailbox_url(bad)


def test_bounces_complaints_and_mailto_requests_from_the_mailbox(app, dovecot, codec):
    with app.app_context():
        gone = feedback.add_subscriber("gone@example.com")
        full = feedback.add_subscriber("full@example.com")
        angry = feedback.add_subscriber("angry@example.com")
        owner = feedback.add_subscriber("owner@example.com")
        bystander = feedback.add_subscriber("bystander@example.com")
        gone_path = feedback.delivery_return_path(codec, gone)
        full_path = feedback.delivery_return_path(codec, full)
        angry_mailto = codec.address(feedback.BOUNCE_ADDRESS, "subscriber", angry.id)
        owner_mailto = codec.address(feedback.BOUNCE_ADDRESS, "subscriber", owner.id)

        dovecot.append(feedback.dsn(gone_path, gone.email, "5.1.1"))
        dovecot.append(feedback.dsn(full_path, full.email, "4.2.2"))
        dovecot.append(
            feedback.arf(feedback.BOUNCE_ADDRESS, angry.email, f"<mailto:{angry_mailto}>")
        )
        dovecot.append(feedback.mailto_request(bystander.email, owner_mailto))
        assert poll_bounce_mailbox(dovecot.url) == 4

        assert feedback.status_of(gone.id) == "bounced"
        assert feedback.status_of(full.id) == "confirmed"  # one soft bounce
        assert feedback.status_of(angry.id) == "unsubscribed"
        assert feedback.status_of(owner.id) == "unsubscribed"
        assert feedback.status_of(bystander.id) == "confirmed"
        # Handled mail moved out of the polled folder.
        assert dovecot.count("INBOX") == 0
        assert dovecot.count(BOUNCE_MAILBOX_DONE_FOLDER) == 4
        assert {row.source for row in db.session.scalars(select(InboundMessage))} == {"imap"}

        # Two more digests soft-bouncing on two more days within the window: bounced.
        for day in (1, 2):
            for row in db.session.scalars(select(InboundMessage)):
                row.received_at -= timedelta(days=1)
            db.session.commit()
            next_path = feedback.delivery_return_path(codec, full)
            dovecot.append(feedback.dsn(next_path, full.email, "4.2.2"))
            assert poll_bounce_mailbox(dovecot.url) == 1
            assert feedback.status_of(full.id) == ("bounced" if day == 2 else "confirmed")
        # An empty folder is a quiet poll.
        assert poll_bounce_mailbox(dovecot.url) == 0


def test_a_hundred_malformed_messages_in_the_mailbox_change_nothing(app, dovecot, codec):
    with app.app_context():
        readers = [feedback.add_subscriber(f"reader{i}@example.com") for i in range(3)]
        for reader in readers:
            feedback.add_delivery(reader)
        for data in feedback.malformed_messages(100, feedback.BOUNCE_ADDRESS, seed=99):
            dovecot.append(data if data.strip() else b"X: y\r\n\r\n")
        assert poll_bounce_mailbox(dovecot.url) == 100
        assert {feedback.status_of(r.id) for r in readers} == {"confirmed"}
        assert db.session.scalar(select(func.count(Suppression.id))) == 0
        rows = db.session.scalars(select(InboundMessage)).all()
        assert len(rows) == 100 and all(row.subscriber_id is None for row in rows)
        assert all(row.processed_at is not None for row in rows)
        assert dovecot.count("INBOX") == 0


@pytest.mark.parametrize("secure", [False, True], ids=["imap", "imaps"])
def test_the_worker_polls_the_mailbox_as_a_scheduled_job(request, make_app, codec, secure):
    """The worker's scheduled job reads the mailbox of BOUNCE_MAILBOX_URL, over IMAP or over
    imaps trusting the URL's CA file."""
    from newsletter.scheduling.worker import Worker

    if secure:
        server = request.getfixturevalue("dovecot_tls")
        url = url_trusting_its_certificate(server)
    else:
        server = request.getfixturevalue("dovecot")
        url = server.url
    app = make_app(BOUNCE_ADDRESS=feedback.BOUNCE_ADDRESS, BOUNCE_MAILBOX_URL=url)
    with app.app_context():
        gone_id, _return_path, data = feedback.bounced_reader(codec)
    server.append(data)
    Worker(app, name="imap-worker").run(until_idle=True)
    with app.app_context():
        assert feedback.status_of(gone_id) == "bounced"
        kinds = db.session.scalars(select(InboundMessage.kind)).all()
        assert kinds == [InboundKind.HARD_BOUNCE]
    assert server.count("INBOX") == 0


def test_a_wrong_password_changes_nothing_and_keeps_the_mail(app, dovecot, codec):
    import imaplib

    with app.app_context():
        gone_id, _return_path, data = feedback.bounced_reader(codec)
        dovecot.append(data)
        with pytest.raises(imaplib.IMAP4.error):
            poll_bounce_mailbox(dovecot.url.replace(dovecot.password, "wrong"))
        assert feedback.status_of(gone_id) == "confirmed"
        assert dovecot.count("INBOX") == 1


def test_imaps_reads_the_mailbox_trusting_the_ca_file_of_the_url(app, dovecot_tls, codec):
    url = url_trusting_its_certificate(dovecot_tls)
    assert url.startswith("imaps://")
    with app.app_context():
        gone_id, _return_path, data = feedback.bounced_reader(codec)
        dovecot_tls.append(data)
        assert poll_bounce_mailbox(url) == 1
        assert feedback.status_of(gone_id) == "bounced"
        assert dovecot_tls.count("INBOX") == 0
        assert dovecot_tls.count(BOUNCE_MAILBOX_DONE_FOLDER) == 1


def test_imaps_refuses_a_certificate_it_cannot_verify_and_keeps_the_mail(app, dovecot_tls, codec):
    with app.app_context():
        gone_id, _return_path, data = feedback.bounced_reader(codec)
        dovecot_tls.append(data)
        # The system's CAs do not vouch for a self-signed certificate.
        with pytest.raises(ssl.SSLCertVerificationError):
            poll_bounce_mailbox(dovecot_tls.url)
        assert feedback.status_of(gone_id) == "confirmed"
        assert dovecot_tls.count("INBOX") == 1
        assert db.session.scalar(select(func.count(InboundMessage.id))) == 0
