"""``mail audit``: the bulk-sender rules checked on samples built by the service itself and on
messages that arrived at a real SMTP server, one of them broken on purpose."""

from __future__ import annotations

import re

import pytest

from tests.support.digests import add_release, add_subscribers
from tests.test_dkim import DOMAIN, SELECTOR
from tests.test_sending import start_digest


@pytest.fixture
def dkim_on(app_config, tmp_path):
    from newsletter.mail.dkim import generate_key

    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(generate_key("ed25519").pem())
    app_config.update(DKIM_DOMAIN=DOMAIN, DKIM_SELECTOR=SELECTOR, DKIM_KEY_FILE=str(key_file))
    return key_file


def rows(output: str) -> dict[str, str]:
    """rule -> PASS/FAIL/SKIP from the printed table."""
    table = {}
    for line in output.splitlines()[2:]:
        match = re.match(r"(.+?)\s{2,}(PASS|FAIL|SKIP)\b", line)
        if match:
            table[match.group(1).strip()] = match.group(2)
    return table


@pytest.mark.parametrize("kind", ["digest", "confirmation", "reset", "welcome"])
def test_samples_of_every_kind_pass_every_rule(dkim_on, app, runner, kind):
    result = runner.invoke(args=["mail", "audit", "--sample", kind, "--language", "en"])
    table = rows(result.output)
    assert result.exit_code == 0, result.output
    assert "FAIL" not in table.values()
    assert table["DKIM signature verifies against the configured key"] == "PASS"
    assert table["From domain aligned with DKIM d="] == "PASS"
    if kind in ("digest", "welcome"):
        assert table["List-Unsubscribe + List-Unsubscribe-Post"] == "PASS"
        assert table["List-Id"] == "PASS"
        # The one-click POST really went to the (scratch) site, without cookies.
        assert table["one-click URL answers a cookieless POST with 200"] == "PASS"
    else:
        assert table["Auto-Submitted on account mail"] == "PASS"


def test_sample_without_dkim_fails_the_signature_rule(app, runner):
    result = runner.invoke(args=["mail", "audit", "--sample", "confirmation"])
    assert result.exit_code == 1
    assert rows(result.output)["DKIM signature verifies against the configured key"] == "FAIL"


def received_digest(app, mailbox, run_worker) -> bytes:
    with app.app_context():
        add_subscribers(1, language="en")
        add_release(language="en", title="Audited")
        start_digest("en")
    run_worker()
    [received] = mailbox.wait_for(1)
    return received.data


def test_a_sent_digest_passes_and_one_without_list_unsubscribe_fails(
    dkim_on, app, runner, mailbox, run_worker, tmp_path
):
    data = received_digest(app, mailbox, run_worker)
    good = tmp_path / "good.eml"
    good.write_bytes(data)
    result = runner.invoke(args=["mail", "audit", str(good), "--no-post"])
    assert result.exit_code == 0, result.output
    assert rows(result.output)["DKIM signature verifies against the configured key"] == "PASS"

    # The same message with its List-Unsubscribe field (and its continuation line) removed.
    stripped = re.sub(
        rb"\r\nList-Unsubscribe: [^\r]*(?:\r\n[ \t][^\r]*)*", b"", data, count=1
    )
    assert b"\r\nList-Unsubscribe:" not in stripped
    assert b"\r\nList-Unsubscribe-Post:" in stripped
    bad = tmp_path / "bad.eml"
    bad.write_bytes(stripped)
    result = runner.invoke(args=["mail", "audit", str(bad), "--no-post"])
    assert result.exit_code == 1, result.output
    table = rows(result.output)
    assert table["List-Unsubscribe + List-Unsubscribe-Post"] == "FAIL"
    # A signed header went missing: the signature no longer verifies either.
    assert table["DKIM signature verifies against the configured key"] == "FAIL"


def test_a_message_signed_with_another_key_fails(dkim_on, app, runner, mailbox, run_worker,
                                                  tmp_path):  # fmt: skip
    from newsletter.mail.dkim import generate_key

    data = received_digest(app, mailbox, run_worker)
    dkim_on.write_bytes(generate_key("ed25519").pem())  # the key was rotated since
    message = tmp_path / "old.eml"
    message.write_bytes(data)
    result = runner.invoke(args=["mail", "audit", str(message), "--no-post"])
    assert result.exit_code == 1
    assert rows(result.output)["DKIM signature verifies against the configured key"] == "FAIL"


def test_welcome_list_unsubscribe_is_a_plain_url_not_an_encoded_word(app, client, mailbox):
    """RFC 2369: List-Unsubscribe is angle-bracketed URLs. An RFC 2047 encoded word there
    (what the email package writes for a value longer than a line) is no URL to a receiver."""
    from newsletter.delivery.subscriptions import queue_welcome_email
    from newsletter.extensions import db
    from newsletter.models import Subscriber
    from newsletter.scheduling.worker import Worker

    with app.app_context():
        add_subscribers(1, language="en", prefix="welcomed")
        subscriber = db.session.query(Subscriber).one()
        queue_welcome_email(subscriber)
        db.session.commit()
    Worker(app, name="welcome").run(until_idle=True)
    [received] = mailbox.wait_for(1)
    head = received.data.partition(b"\r\n\r\n")[0]
    field = re.search(rb"\r\nList-Unsubscribe: ([^\r]*(?:\r\n[ \t][^\r]*)*)", head).group(1)
    assert b"=?" not in field, field
    assert re.match(rb"<https://news\.example\.org/unsubscribe/[^>\s]+>", field), field
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
