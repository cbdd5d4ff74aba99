"""Posting queued webhook deliveries (the worker calls ``deliver_webhook_batch``).

Each attempt is signed afresh (the timestamp is the attempt's); ``webhook-id`` stays the same
across retries so a receiver can drop duplicates. Any 2xx is success; anything else, a
timeout or a refused connection is a failure, retried with exponential backoff.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from flask import current_app

from ..config import WEBHOOK_LEASE
from ..domain.webhooks import ClaimedWebhook, claim_due, record_attempt, sign
from ..extensions import db
from ..models import utcnow

log = logging.getLogger(__name__)
USER_AGENT = "newsletter-webhooks/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would post the signed body somewhere unchosen."""

    def redirect_request(self, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_webhook(item: ClaimedWebhook, timeout: float) -> tuple[bool, int | None, str | None]:
    """One signed POST; ``(ok, status code, error)``."""
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when saved
        item.url,
        data=item.body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": item.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(item.secret, item.message_id, timestamp, item.body),
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
            response.read(4096)
    except urllib.error.HTTPError as exc:
        return False, exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, None, str(getattr(exc, "reason", exc))[:500]
    return 200 <= status < 300, status, None if 200 <= status < 300 else f"HTTP {status}"


def deliver_webhook_batch() -> int:
    """Post the due deliveries once; returns how many were attempted. Needs an app context."""
    config = current_app.config
    claimed = claim_due(utcnow(), WEBHOOK_LEASE)
    db.session.commit()
    for item in claimed:
        ok, status, error = post_webhook(item, float(config["WEBHOOK_TIMEOUT_SECONDS"]))
        record_attempt(
            item.id,
            ok=ok,
            status_code=status,
            error=error,
            now=utcnow(),
            retry_seconds=float(config["WEBHOOK_RETRY_SECONDS"]),
            max_failures=int(config["WEBHOOK_MAX_FAILURES"]),
        )
        db.session.commit()
        if not ok:
            log.info("webhook %s to %s failed: %s", item.message_id, item.url, error)
    return len(claimed)
