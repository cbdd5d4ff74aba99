"""DKIM signing and mail streams, read back at real SMTP servers (aiosmtpd) and verified with
dkimpy against a stub DNS lookup that serves the configured key's record."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest

from newsletter.mail.dkim import generate_key, load_key
from tests.conftest import free_port
from tests.support.digests import add_release, add_subscribers
from tests.support.mailbox import SmtpSink
from tests.test_sending import start_digest

DOMAIN = "example.org"
SELECTOR = "news2026"


@pytest.fixture(scope="session", params=["rsa", "ed25519"])
def key_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / f"{request.param}.pem"
    path.write_bytes(generate_key(request.param).pem())
    return path


def dns_for(key_path: Path, domain: str = DOMAIN, selector: str = SELECTOR):
    """A dnsfunc for dkimpy that knows one record: the key's, at its proper name."""
    record = load_key(key_path.read_bytes()).txt_record().encode()
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record if name == f"{selector}._domainkey.{domain}.".encode() else None

    dnsfunc.asked = asked  # type: ignore[attr-defined]
    return dnsfunc


def signed_headers(data: bytes) -> list[str]:
    message = dkim.DKIM(data)
    [signature] = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
    tags = dict(
        (part.split(b"=", 1)[0].strip(), part.split(b"=", 1)[1])
        for part in re.sub(rb"\s+", b"", signature).split(b";")
        if part
    )
    return [name.decode().lower() for name in tags[b"h"].split(b":")]


@pytest.fixture
def dkim_config(app_config, key_file):
    app_config.update(DKIM_DOMAIN=DOMAIN, DKIM_SELECTOR=SELECTOR, DKIM_KEY_FILE=str(key_file))
    return app_config


def test_each_digest_message_is_signed_and_the_signature_covers_list_unsubscribe(
    dkim_config, key_file, app, mailbox, run_worker
):
    with app.app_context():
        addresses = add_subscribers(3, language="en")
        add_release(language="en", title="Signed news")
        digest_id = start_digest("en")
    run_worker()
    messages = mailbox.wait_for(3)
    assert sorted(m.to for m in messages) == sorted(addresses)
    dnsfunc = dns_for(key_file)
    for received in messages:
        assert dkim.verify(received.data, dnsfunc=dnsfunc), received.data[:600]
        names = signed_headers(received.data)
        for header in ("from", "to", "subject", "date", "message-id", "mime-version",
                       "content-type", "list-id", "list-unsubscribe", "list-unsubscribe-post",
                       "feedback-id"):  # fmt: skip
            assert header in names, (header, names)
        assert received.header("Feedback-ID") == f"digest-{digest_id}:newsletter:{DOMAIN}"
    # Signed per recipient: each body (its unsubscribe links) has its own hash.
    body_hashes = {re.search(rb"bh=([^;]+);", m.data).group(1) for m in messages}
    assert len(body_hashes) == 3


def test_a_changed_message_fails_verification(dkim_config, key_file, app, mailbox, run_worker):
    with app.app_context():
        [address] = add_subscribers(1, language="en")
        add_release(language="en", title="Tamper with me")
        start_digest("en")
    run_worker()
    [received] = mailbox.wait_for(1)
    dnsfunc = dns_for(key_file)
    assert dkim.verify(received.data, dnsfunc=dnsfunc)
    head, _, body = received.data.partition(b"\r\n\r\n")
    # Someone rewrites the unsubscribe header, or a word of the body, or the To.
    swapped = re.sub(rb"List-Unsubscribe: <[^>]+>", b"List-Unsubscribe: <https://evil.example/u>",
                     head)  # fmt: skip
    assert swapped != head
    assert not dkim.verify(swapped + b"\r\n\r\n" + body, dnsfunc=dnsfunc)
    assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"Tamper", b"Tamp3r"), dnsfunc=dnsfunc)
    assert not dkim.verify(
        received.data.replace(address.encode(), b"other@example.org", 1), dnsfunc=dnsfunc
    )
    # And a key that is not the published one does not verify either.
    other = Path(str(key_file) + ".other")
    other.write_bytes(generate_key(load_key(key_file.read_bytes()).kind).pem())
    assert not dkim.verify(received.data, dnsfunc=dns_for(other))


def test_account_mail_is_signed_too(dkim_config, key_file, app, client, mailbox, run_worker):
    response = client.post("/api/v1/subscriptions", json={"email": "new@example.org"})
    assert response.status_code == 202
    run_worker()
    [received] = mailbox.wait_for(1)
    assert dkim.verify(received.data, dnsfunc=dns_for(key_file))
    names = signed_headers(received.data)
    assert {"from", "to", "subject", "message-id", "auto-submitted", "feedback-id"} <= set(names)
    assert "list-unsubscribe" not in names  # not a newsletter message: no such header
    assert received.header("Auto-Submitted") == "auto-generated"
    assert received.header("Feedback-ID") == f"subscription_confirm:transactional:{DOMAIN}"


def test_without_dkim_settings_nothing_is_signed(app, client, mailbox, run_worker):
    client.post("/api/v1/subscriptions", json={"email": "plain@example.org"})
    run_worker()
    [received] = mailbox.wait_for(1)
    assert received.header("DKIM-Signature") is None


def test_account_mail_takes_its_own_relay_and_sender(app_config, app, make_app, mailbox):
    second = SmtpSink(port=free_port())
    second.start()
    try:
        streamed = make_app(
            TRANSACTIONAL_MAIL_URL=f"smtp://127.0.0.1:{second.port}?timeout=5",
            TRANSACTIONAL_MAIL_FROM="Account desk <accounts@mail.example.org>",
        )
        from newsletter.scheduling.worker import Worker

        with streamed.app_context():
            add_subscribers(2, language="en")
            add_release(language="en", title="Two streams")
            start_digest("en")
        response = streamed.test_client().post(
            "/api/v1/subscriptions", json={"email": "joiner@example.org"}
        )
        assert response.status_code == 202
        Worker(streamed, name="stream-worker").run(until_idle=True)
        digests = mailbox.wait_for(2)
        [confirmation] = second.mailbox.wait_for(1)
        assert confirmation.to == "joiner@example.org"
        assert confirmation.mail_from == "accounts@mail.example.org"
        assert "accounts@mail.example.org" in confirmation.header("From")
        assert confirmation.header("List-Id") is None
        assert len(digests) == 2
        assert all(m.mail_from == "news@example.org" for m in digests)
        assert all("news@example.org" in m.header("From") for m in digests)
        assert all(m.header("List-Id") for m in digests)
        assert "joiner@example.org" not in [m.to for m in mailbox.messages]
        assert len(second.mailbox.messages) == 1
    finally:
        second.stop()


def test_keygen_writes_a_private_key_and_prints_its_record(runner, tmp_path):
    for algorithm in ("rsa", "ed25519"):
        out = tmp_path / f"{algorithm}.pem"
        result = runner.invoke(
            args=["dkim", "keygen", "--domain", "Example.ORG", "--selector", "s1",
                  "--algorithm", algorithm, "--out", str(out)]  # fmt: skip
        )
        assert result.exit_code == 0, result.output
        assert out.stat().st_mode & 0o777 == 0o600
        lines = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
        assert lines["name"] == "s1._domainkey.example.org"
        record = lines["value"].encode()
        # The printed record is the one dkimpy needs to verify what this key signs.
        public = dkim.parse_tag_value(record)
        assert public[b"k"] == algorithm.encode()
        from newsletter.mail.dkim import DkimSigner

        signer = DkimSigner("example.org", "s1", load_key(out.read_bytes()))
        message = signer.sign(b"From: a@example.org\r\nTo: b@example.org\r\n\r\nhi\r\n")
        assert dkim.verify(message, dnsfunc=lambda name, timeout=5, record=record: record)
        again = runner.invoke(
            args=["dkim", "keygen", "--domain", "example.org", "--selector", "s1",
                  "--out", str(out)]  # fmt: skip
        )
        assert again.exit_code != 0 and "exists" in again.output
    bad = runner.invoke(args=["dkim", "keygen", "--domain", "exa mple", "--selector", "s1"])
    assert bad.exit_code != 0


@pytest.fixture
def missing_key(app_config, tmp_path):
    app_config.update(DKIM_DOMAIN=DOMAIN, DKIM_SELECTOR=SELECTOR,
                      DKIM_KEY_FILE=str(tmp_path / "missing.pem"))  # fmt: skip


def test_a_worker_with_an_unreadable_key_refuses_to_start_and_sends_nothing(
    missing_key, tmp_path, app, client, mailbox, runner
):
    assert client.post("/api/v1/subscriptions", json={"email": "x@example.org"}).status_code == 202
    with app.app_context():  # as the flask command line gives every command
        result = runner.invoke(args=["worker", "--until-idle"])
        assert result.exit_code != 0
        assert "missing.pem" in result.output
        (tmp_path / "missing.pem").write_text("not a key")
        result = runner.invoke(args=["worker", "--until-idle"])
        assert result.exit_code != 0 and "PEM" in result.output, result.output
    assert mailbox.messages == []
