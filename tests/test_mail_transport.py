"""SMTP transport against real servers: STARTTLS, implicit TLS, AUTH, connection reuse."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.mail.transport import DeliveryError, SmtpTransport, open_transport, parse_mail_url
from tests.conftest import free_port
from tests.support.mailbox import SmtpSink

MESSAGE = (
    b"From: news@example.org\r\nTo: r@example.org\r\nSubject: hi\r\n"
    b"Message-ID: <1@example.org>\r\n\r\nhello\r\n"
)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"sender",
        b"s3cret:pw",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def tls_sink(certificate):
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        # smtplib falls back from PLAIN to LOGIN after a refusal, which aiosmtpd answers slowly.
        auth_exclude_mechanism=["LOGIN"],
    )
    sink.start()
    yield sink
    sink.stop()


def test_starttls_and_login_deliver(tls_sink, certificate):
    cert, _ = certificate
    transport = open_transport(
        f"smtp://sender:s3cret%3Apw@127.0.0.1:{tls_sink.port}?starttls=true&timeout=5&cafile={cert}"
    )
    try:
        for index in range(3):  # one connection carries several messages
            accepted = transport.send("news@example.org", f"r{index}@example.org", MESSAGE)
            assert accepted.code == 250
    finally:
        transport.close()
    assert [m.to for m in tls_sink.mailbox.wait_for(3)] == [
        "r0@example.org",
        "r1@example.org",
        "r2@example.org",
    ]


def test_wrong_password_is_a_clear_delivery_error(tls_sink, certificate):
    cert, _ = certificate
    transport = open_transport(
        f"smtp://sender:wrong@127.0.0.1:{tls_sink.port}?starttls=true&timeout=5&cafile={cert}"
    )
    with pytest.raises(DeliveryError, match="login refused"):
        transport.send("news@example.org", "r@example.org", MESSAGE)
    assert tls_sink.mailbox.messages == []


def test_untrusted_certificate_is_refused(tls_sink):
    transport = open_transport(
        f"smtp://sender:s3cret%3Apw@127.0.0.1:{tls_sink.port}?starttls=true&timeout=5"
    )
    with pytest.raises(DeliveryError) as caught:
        transport.send("news@example.org", "r@example.org", MESSAGE)
    assert caught.value.temporary
    assert tls_sink.mailbox.messages == []


def test_implicit_tls_smtps(certificate):
    import ssl

    from aiosmtpd.controller import Controller

    from tests.support.mailbox import Mailbox, _Handler

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(port=free_port())
    mailbox = Mailbox()
    controller = Controller(
        _Handler(mailbox, sink), hostname="127.0.0.1", port=sink.port, ssl_context=context
    )
    controller.start()
    try:
        settings = parse_mail_url(f"smtps://127.0.0.1:{sink.port}?cafile={cert}")
        transport = SmtpTransport(settings)
        transport.send("news@example.org", "tls@example.org", MESSAGE)
        transport.close()
    finally:
        controller.stop()
    assert [m.to for m in mailbox.messages] == ["tls@example.org"]


def test_server_that_went_away_is_reconnected(smtp_sink, mailbox):
    transport = open_transport(f"smtp://127.0.0.1:{smtp_sink.port}")
    transport.send("news@example.org", "one@example.org", MESSAGE)
    smtp_sink.stop()
    smtp_sink.start()
    with pytest.raises(DeliveryError) as caught:
        transport.send("news@example.org", "two@example.org", MESSAGE)
    assert caught.value.temporary
    transport.send("news@example.org", "three@example.org", MESSAGE)  # a fresh connection
    transport.close()
    assert [m.to for m in mailbox.wait_for(2)] == ["one@example.org", "three@example.org"]
