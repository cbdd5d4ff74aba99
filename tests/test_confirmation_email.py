"""The confirmation email is rendered once per language and personalised by substitution (the
subscribe request's hot path): what it carries must be what rendering it directly gives."""

from __future__ import annotations

import email
import html
import re
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from newsletter.delivery.subscriptions import queue_confirmation_email
from newsletter.domain.subscriptions import PendingSubscriber
from newsletter.extensions import db
from newsletter.mail.render import render_email
from newsletter.models import OutboxMessage

NAMES = [None, "Zoë", "O'Brien & <Fils> \"l'aîné\"", "Marie-" + "é" * 190, "=?utf-8?q?x?="]
ADDRESSES = ["reader@example.org", "josé@exemple.fr"]


def visible(markup: str) -> str:
    """HTML as a reader sees it: entities resolved (escaping style may differ, meaning not)."""
    return html.unescape(markup)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("address", ADDRESSES)
def test_substituted_confirmation_reads_as_a_direct_render(app, language, name, address):
    with app.app_context():
        message_id = queue_confirmation_email(
            PendingSubscriber(id=41, email=address, email_key=address, name=name, language=language)
        )
        data = db.session.scalar(
            select(OutboxMessage.message).where(OutboxMessage.id == message_id)
        )
        db.session.rollback()
        # Raw UTF-8 headers (SMTPUTF8, RFC 6532) read back as text.
        message = email.message_from_string(bytes(data).decode(), policy=default_policy)
        plain, rich = (part.get_content().replace("\r\n", "\n") for part in message.iter_parts())
        (confirm_url,) = re.findall(r"https?://\S+", plain)
        expected = render_email(
            "subscription_confirm", language, confirm_url=confirm_url, name=name or ""
        )
    assert plain == expected.text
    assert visible(rich) == visible(expected.html)
    assert str(message["Subject"]) == expected.subject
    assert message["To"].addresses[0].addr_spec == address
    assert (message["To"].addresses[0].display_name or None) == name
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None  # transactional, not a newsletter
    assert message["Content-Language"] == language
    assert message["Message-ID"] and message["Date"]
    for line in bytes(data).split(b"\r\n"):
        assert len(line) <= 998
    assert b"\x00" not in data


def test_each_confirmation_has_its_own_message_id_and_link(app):
    with app.app_context():
        ids = [
            queue_confirmation_email(
                PendingSubscriber(
                    id=index,
                    email=f"r{index}@example.org",
                    email_key=f"r{index}@example.org",
                    name=None,
                    language="fr",
                )
            )
            for index in (1, 2)
        ]
        rows = db.session.scalars(
            select(OutboxMessage.message).where(OutboxMessage.id.in_(ids))
        ).all()
        db.session.rollback()
    messages = [email.message_from_bytes(bytes(row), policy=default_policy) for row in rows]
    assert messages[0]["Message-ID"] != messages[1]["Message-ID"]
    links = [re.findall(r"https?://\S+", m.get_body(("plain",)).get_content()) for m in messages]
    assert links[0] != links[1]
