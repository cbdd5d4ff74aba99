"""A digest as mail: rendered once per run, personalised per recipient (links, Message-ID)."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app

from ..domain.releases import release_shown
from ..domain.subscriptions import preferences_token_for, unsubscribe_token
from ..mail.prepared import LINK_MARKER, UNSUBSCRIBE_MARKER, PreparedMessage, build_template
from ..mail.render import render_email
from ..models import Release
from .links import digest_page_url, release_page_url, token_url
from .signing import app_signer
from .streams import STREAM_NEWSLETTER, feedback_id, stream_mail_from
from .subscriptions import newsletter_headers

log = logging.getLogger(__name__)


def release_context(release: Release) -> dict[str, object]:
    """What the digest templates know of a release."""
    return {
        **release_shown(release),
        "published_at": release.published_at,
        # Every item links to a page where it can be read (issue 13): its public page.
        "page_url": release_page_url(release.id, release.language, release.title),
    }


def render_digest_template(
    language: str,
    subject: str,
    releases: list[Release],
    when: datetime,
    digest_id: int | None = None,
) -> bytes:
    """The digest serialised once, with slots for what differs per recipient (the unsubscribe
    and preferences links); ``digest_id`` gives the "view in your browser" link. Its
    ``Feedback-ID`` names the digest, so complaint reports can be read per digest."""
    rendered = render_email(
        "digest",
        language,
        digest_subject=subject,
        digest_date=when,
        releases=[release_context(release) for release in releases],
        unsubscribe_url=UNSUBSCRIBE_MARKER,
        preferences_url=LINK_MARKER,
        web_url=digest_page_url(digest_id, language) if digest_id else "",
    )
    headers, _url, _token = newsletter_headers(0, "")
    mailto = headers["List-Unsubscribe"].split(",", 1)[1].strip(" <>")
    headers["Feedback-ID"] = feedback_id(
        "digest" if digest_id is None else f"digest-{digest_id}", STREAM_NEWSLETTER
    )
    return build_template(
        rendered,
        mail_from=stream_mail_from(STREAM_NEWSLETTER),
        headers=headers,
        mailto_unsubscribe=mailto,
        # VERP (issue 12): each recipient's mailto names that subscriber.
        personal_mailto=bool(current_app.config.get("BOUNCE_ADDRESS")),
    )


class UnsubscribeLinks:
    """Per-recipient unsubscribe URLs: one signer for a whole batch."""

    def __init__(self) -> None:
        self.signer = app_signer()

    def url(self, subscriber_id: int, email_key: str) -> str:
        return token_url(
            "public.unsubscribe", unsubscribe_token(self.signer, subscriber_id, email_key)
        )

    def preferences_url(self, subscriber_id: int, email_key: str) -> str:
        return token_url(
            "public.preferences", preferences_token_for(self.signer, subscriber_id, email_key)
        )


def message_id(digest_id: int, subscriber_id: int, prepared: PreparedMessage) -> str:
    """Stable per digest and subscriber, so a re-send after a crash carries the same id."""
    return f"<digest-{digest_id}.{subscriber_id}.{prepared.nonce}@{prepared.domain}>"
