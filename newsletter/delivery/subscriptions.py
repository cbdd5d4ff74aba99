"""Emails of the subscription capability: confirmation, welcome, and newsletter headers."""

from __future__ import annotations

from email.utils import make_msgid

from flask import current_app

from ..domain.subscriptions import (
    CONFIRMATION_KIND,
    PendingSubscriber,
    confirmation_token,
    preferences_token,
    unsubscribe_token,
)
from ..mail.message import envelope_sender
from ..mail.prepared import (
    LINK_MARKER,
    NAME_MARKER,
    PreparedMessage,
    Recipient,
    build_template,
)
from ..mail.render import render_email
from ..models import Subscriber
from .links import public_url_for, token_url
from .outbox import queue_email, queue_message
from .signing import app_signer
from .streams import STREAM_TRANSACTIONAL, feedback_id, stream_mail_from


def queue_confirmation_email(subscriber: Subscriber | PendingSubscriber) -> int:
    """The double opt-in email: exactly one confirmation link in its plain text.

    The hot path of a subscribe request: the email is rendered once per language (and with or
    without a name) and personalised by substitution. Returns the outbox message's id.
    """
    prepared = _confirmation_template(subscriber.language, bool(subscriber.name))
    token = confirmation_token(app_signer(), subscriber)
    data = prepared.personalise(
        Recipient(
            address=subscriber.email,
            name=subscriber.name,
            link_url=token_url("public.confirm", token),
            message_id=make_msgid(domain=prepared.domain),
        )
    )
    return queue_message(CONFIRMATION_KIND, subscriber.email, data)


def _confirmation_template(language: str, named: bool) -> PreparedMessage:
    templates = current_app.extensions.setdefault("newsletter.confirmation_templates", {})
    prepared = templates.get((language, named))
    if prepared is None:
        rendered = render_email(
            "subscription_confirm",
            language,
            confirm_url=LINK_MARKER,
            name=NAME_MARKER if named else "",
        )
        template = build_template(
            rendered,
            mail_from=stream_mail_from(STREAM_TRANSACTIONAL),
            headers={
                "Auto-Submitted": "auto-generated",
                "Feedback-ID": feedback_id(CONFIRMATION_KIND, STREAM_TRANSACTIONAL),
            },
            list_unsubscribe=False,
        )
        prepared = templates[(language, named)] = PreparedMessage(template)
    return prepared


def newsletter_headers(subscriber_id: int, email_key: str) -> tuple[dict[str, str], str, str]:
    """``List-*`` headers (RFC 2369, RFC 8058) plus the unsubscribe and preferences URLs."""
    signer = app_signer()
    token = unsubscribe_token(signer, subscriber_id, email_key)
    unsubscribe_url = public_url_for("public.unsubscribe", token=token)
    config = current_app.config
    mailbox = config.get("UNSUBSCRIBE_MAILTO") or envelope_sender(config["MAIL_FROM"])
    mailto = f"mailto:{mailbox}?subject=unsubscribe"
    headers = {
        "List-Unsubscribe": f"<{unsubscribe_url}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"<{config['LIST_ID']}>",
        "Precedence": "bulk",
        "Auto-Submitted": "auto-generated",
    }
    return headers, unsubscribe_url, token


def queue_welcome_email(subscriber: Subscriber) -> int | None:
    """A welcome note after confirming: a newsletter message, so it carries List-Unsubscribe."""
    if not current_app.config.get("SEND_WELCOME_EMAIL", True):
        return None
    headers, unsubscribe_url, _ = newsletter_headers(subscriber.id, subscriber.email_key)
    return queue_email(
        "subscription_welcome",
        to=subscriber.email,
        to_name=subscriber.name,
        template="subscription_welcome",
        language=subscriber.language,
        headers=headers,
        unsubscribe_url=unsubscribe_url,
        preferences_url=public_url_for(
            "public.preferences", token=preferences_token(app_signer(), subscriber)
        ),
        name=subscriber.name or "",
    )
