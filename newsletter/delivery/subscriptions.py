"""Emails of the subscription capability: confirmation, welcome, and newsletter headers."""

from __future__ import annotations

from flask import current_app

from ..domain.subscriptions import (
    CONFIRMATION_KIND,
    confirmation_token,
    preferences_token,
    unsubscribe_token,
)
from ..mail.message import envelope_sender
from ..models import OutboxMessage, Subscriber
from .links import public_url_for
from .outbox import queue_email
from .signing import app_signer


def queue_confirmation_email(subscriber: Subscriber) -> OutboxMessage:
    """The double opt-in email: exactly one confirmation link in its plain text."""
    token = confirmation_token(app_signer(), subscriber)
    return queue_email(
        CONFIRMATION_KIND,
        to=subscriber.email,
        to_name=subscriber.name,
        template="subscription_confirm",
        language=subscriber.language,
        confirm_url=public_url_for("public.confirm", token=token),
        name=subscriber.name or "",
    )


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


def queue_welcome_email(subscriber: Subscriber) -> OutboxMessage | None:
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
