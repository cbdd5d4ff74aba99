"""A digest as mail: rendered once per run, personalised per recipient (links, Message-ID)."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app

from ..domain.subscriptions import unsubscribe_token
from ..mail.prepared import UNSUBSCRIBE_MARKER, PreparedMessage, build_template
from ..mail.render import render_email
from ..models import (
    Release,
)
from .links import token_url
from .signing import app_signer
from .subscriptions import newsletter_headers

log = logging.getLogger(__name__)


def release_context(release: Release) -> dict[str, object]:
    """What the digest templates know of a release."""
    return {
        "title": release.title,
        "dateline": release.dateline,
        "summary": release.summary,
        "url": release.url,
        "image_url": release.image_url,
        "video_url": release.video_url,
        "published_at": release.published_at,
    }


def render_digest_template(
    language: str, subject: str, releases: list[Release], when: datetime
) -> bytes:
    """The digest serialised once, with slots for what differs per recipient."""
    rendered = render_email(
        "digest",
        language,
        digest_subject=subject,
        digest_date=when,
        releases=[release_context(release) for release in releases],
        unsubscribe_url=UNSUBSCRIBE_MARKER,
    )
    headers, _url, _token = newsletter_headers(0, "")
    mailto = headers["List-Unsubscribe"].split(",", 1)[1].strip(" <>")
    return build_template(
        rendered,
        mail_from=current_app.config["MAIL_FROM"],
        headers=headers,
        mailto_unsubscribe=mailto,
    )


class UnsubscribeLinks:
    """Per-recipient unsubscribe URLs: one signer for a whole batch."""

    def __init__(self) -> None:
        self.signer = app_signer()

    def url(self, subscriber_id: int, email_key: str) -> str:
        return token_url(
            "public.unsubscribe", unsubscribe_token(self.signer, subscriber_id, email_key)
        )


def message_id(digest_id: int, subscriber_id: int, prepared: PreparedMessage) -> str:
    """Stable per digest and subscriber, so a re-send after a crash carries the same id."""
    return f"<digest-{digest_id}.{subscriber_id}.{prepared.nonce}@{prepared.domain}>"
