"""Preview and test sends of a digest: what a subscriber would get, without a delivery row."""

from __future__ import annotations

import email
import logging
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy

from flask import current_app

from ..domain.digest_composition import default_subject, releases_for_digest
from ..mail.prepared import PreparedMessage, Recipient
from ..models import (
    Digest,
    utcnow,
)
from .digest_messages import message_id, render_digest_template
from .links import public_url_for
from .outbox import queue_message

log = logging.getLogger(__name__)


def preview_message(digest: Digest, now: datetime | None = None) -> EmailMessage:
    """The digest as a subscriber would get it (the rendered one, or a fresh composition)."""
    now = now or utcnow()
    template = digest.rendered_message
    if template is None:
        releases = list(digest.releases) or releases_for_digest(
            digest.language, now, first_window_days=current_app.config["DIGEST_FIRST_WINDOW_DAYS"]
        )
        subject = digest.subject or default_subject(digest.language, releases, now)
        template = render_digest_template(digest.language, subject, releases, now, digest.id)
    prepared = PreparedMessage(bytes(template))
    data = prepared.personalise(
        Recipient(
            address="subscriber@example.org",
            unsubscribe_url=public_url_for(
                "public.unsubscribe",
                token="preview",  # noqa: S106 - a dummy link, not a secret
            ),
            link_url=public_url_for(
                "public.preferences",
                token="preview",  # noqa: S106 - a dummy link, not a secret
            ),
            message_id=message_id(digest.id or 0, 0, prepared),
        )
    )
    return email.message_from_bytes(data, policy=default_policy)  # type: ignore[return-value]


def queue_test_send(digest: Digest, address: str, now: datetime | None = None) -> None:
    """Queue the digest to one address through the outbox (the caller commits).

    Its unsubscribe link is a dummy: a test recipient is not a subscriber.
    """
    message = preview_message(digest, now)
    subject = str(message["Subject"] or "")
    del message["To"]
    message["To"] = address
    del message["Subject"]
    message["Subject"] = f"[TEST] {subject}"
    queue_message("digest_test", address, message)
