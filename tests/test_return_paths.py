"""VERP: each digest and outbox message has its own envelope sender, read back as MAIL FROM at
a real SMTP server; the List-Unsubscribe mailto is personal; tokens cannot be forged."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from newsletter.domain.return_paths import ReturnPathCodec, ReturnPathToken
from newsletter.extensions import db
from newsletter.inbound.processor import receive
from newsletter.models import Delivery, OutboxMessage, Subscriber
from tests.conftest import TEST_SECRET_KEY
from tests.support.digests import start_digest_to
from tests.support.feedback import BOUNCE_ADDRESS, dsn, mailto_request

MAILTO_RE = re.compile(r"<mailto:([^?>]+)\?subject=unsubscribe>")


def test_tokens_round_trip_and_ignore_case():
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    for kind in ("delivery", "outbox", "subscriber"):
        for ident in (1, 2, 255, 256, 123_456_789, 2**63 - 1):
            address = codec.address(BOUNCE_ADDRESS, kind, ident)
            local = address.split("@")[0]
            assert len(local) <= 64  # RFC 5321's limit for a local part
            assert codec.read_address(BOUNCE_ADDRESS, address) == ReturnPathToken(kind, ident)
            assert codec.read_address(BOUNCE_ADDRESS, address.upper()) == ReturnPathToken(
                kind, ident
            )


def test_forged_or_foreign_tokens_name_nothing():
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    token = codec.token("subscriber", 42)
    letter, ident, mac = token.split("-")
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    assert codec.read(f"{letter}-{ident}-{flipped}") is None
    # Same signature on another id or another kind: refused.
    other_id = codec.token("subscriber", 43).split("-")[1]
    assert codec.read(f"{letter}-{other_id}-{mac}") is None
    assert codec.read(f"d-{ident}-{mac}") is None
    # Made with another key: refused; with a fallback key: still read (key rotation).
    foreign = ReturnPathCodec("another-key").token("subscriber", 42)
    assert codec.read(foreign) is None
    assert ReturnPathCodec("new-key", [TEST_SECRET_KEY]).read(token) == ReturnPathToken(
        "subscriber", 42
    )
    # Another base address or domain: refused.
    address = codec.address(BOUNCE_ADDRESS, "subscriber", 42)
    assert codec.read_address("bounces@example.net", address.replace(".org", ".net")) is not None
    assert codec.read_address(BOUNCE_ADDRESS, address.replace("example.org", "evil.org")) is None
    assert codec.read_address(BOUNCE_ADDRESS, address.replace("bounces+", "other+")) is None
    for junk in ("", "x", "d--", "d-" + "a" * 40 + "-" + "b" * 10, "\x00", "é-a-b"):
        assert codec.read(junk) is None


@pytest.fixture
def verp_app(make_app):
    return make_app(BOUNCE_ADDRESS=BOUNCE_ADDRESS)


def test_each_digest_message_has_its_own_envelope_sender_and_mailto(
    verp_app, mailbox, run_worker
):
    from newsletter.scheduling.worker import Worker

    with verp_app.app_context():
        start_digest_to(4, prefix="reader")
    Worker(verp_app, name="verp-worker").run(until_idle=True)
    messages = mailbox.wait_for(4)
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    senders = [m.mail_from for m in messages]
    assert len(set(senders)) == 4
    with verp_app.app_context():
        for message in messages:
            token = codec.read_address(BOUNCE_ADDRESS, message.mail_from)
            assert token is not None and token.kind == "delivery", message.mail_from
            delivery = db.session.get(Delivery, token.id)
            subscriber = db.session.get(Subscriber, delivery.subscriber_id)
            assert subscriber.email == message.to
            # The mailto names this subscriber and no one else.
            [mailto] = MAILTO_RE.findall(message.header("List-Unsubscribe"))
            assert codec.read_address(BOUNCE_ADDRESS, mailto) == ReturnPathToken(
                "subscriber", subscriber.id
            )
            assert message.header("List-Unsubscribe").startswith("<https://news.example.org/")
        # The loop closes: a DSN to one return path bounces that subscriber only.
        first = messages[0]
        receive("smtp", dsn(first.mail_from, first.to, "5.1.1"), recipients=[first.mail_from])
        statuses = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert statuses.pop(first.to) == "bounced"
        assert set(statuses.values()) == {"confirmed"}
        # And the second message's mailto unsubscribes its owner only.
        second = messages[1]
        [mailto] = MAILTO_RE.findall(second.header("List-Unsubscribe"))
        receive("smtp", mailto_request(second.to, mailto), recipients=[mailto])
        statuses = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert statuses.pop(second.to) == "unsubscribed"
        assert statuses.pop(first.to) == "bounced"
        assert set(statuses.values()) == {"confirmed"}


def test_outbox_messages_carry_their_own_return_path(verp_app, mailbox):
    from newsletter.scheduling.worker import Worker

    client = verp_app.test_client()
    for email in ("one@example.com", "two@example.com"):
        assert client.post("/api/v1/subscriptions", json={"email": email}).status_code == 202
    Worker(verp_app, name="verp-worker").run(until_idle=True)
    messages = mailbox.wait_for(2)
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    with verp_app.app_context():
        for message in messages:
            token = codec.read_address(BOUNCE_ADDRESS, message.mail_from)
            assert token is not None and token.kind == "outbox"
            assert db.session.get(OutboxMessage, token.id).recipient == message.to


def test_without_a_bounce_address_the_envelope_sender_is_mail_from(app, mailbox, run_worker):
    with app.app_context():
        start_digest_to(2, prefix="reader")
    run_worker()
    messages = mailbox.wait_for(2)
    assert {m.mail_from for m in messages} == {"news@example.org"}
    for message in messages:
        assert "<mailto:news@example.org?subject=unsubscribe>" in message.header(
            "List-Unsubscribe"
        )


def test_signed_digests_keep_their_own_return_path_and_personal_mailto(
    make_app, mailbox, tmp_path
):
    """DKIM (the outgoing half) and VERP together: the personal mailto is inside the signed
    List-Unsubscribe, and each message still has its own envelope sender."""
    import dkim

    from newsletter.mail.dkim import generate_key
    from newsletter.scheduling.worker import Worker
    from tests.test_dkim import DOMAIN, SELECTOR, dns_for, signed_headers

    key_file = tmp_path / "rsa.pem"
    key_file.write_bytes(generate_key("rsa").pem())
    app = make_app(
        BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        DKIM_DOMAIN=DOMAIN,
        DKIM_SELECTOR=SELECTOR,
        DKIM_KEY_FILE=str(key_file),
    )
    with app.app_context():
        start_digest_to(2, prefix="signed")
    Worker(app, name="verp-dkim-worker").run(until_idle=True)
    messages = mailbox.wait_for(2)
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    assert len({m.mail_from for m in messages}) == 2
    for message in messages:
        assert dkim.verify(message.data, dnsfunc=dns_for(key_file))
        assert "list-unsubscribe" in signed_headers(message.data)
        [mailto] = MAILTO_RE.findall(message.header("List-Unsubscribe"))
        assert codec.read_address(BOUNCE_ADDRESS, mailto).kind == "subscriber"
        assert codec.read_address(BOUNCE_ADDRESS, message.mail_from).kind == "delivery"
