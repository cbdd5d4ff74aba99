"""Outgoing webhooks, Standard Webhooks layout (https://www.standardwebhooks.com/).

An event is written as one ``WebhookDelivery`` row per subscribed endpoint *in the
transaction of the change it reports* (a rolled-back change sends nothing; a committed one is
never lost). The worker posts them (``delivery.webhooks``) with retries and exponential
backoff; an endpoint failing too many deliveries in a row is disabled.

Signature: ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where
the key is the base64 part of the endpoint's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, or_, select, update

from ..config import WEBHOOK_BACKOFF_CAP, WEBHOOK_EVENTS
from ..extensions import db
from ..models import WebhookDelivery, WebhookEndpoint, utcnow

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


class WebhookError(ValueError):
    """Bad endpoint input; ``field`` names what to fix."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value for one attempt."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: str) -> bool:
    """What a receiver does (used by our tests, and documented for receivers)."""
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers.get("webhook-signature", "").split()
    )


def clean_endpoint(url: object, events: list[str]) -> tuple[str, list[str]]:
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(text) > 2000:
        raise WebhookError("url", "url")
    chosen = [event for event in WEBHOOK_EVENTS if event in set(events)]
    if not chosen or len(chosen) != len(set(events)):
        raise WebhookError("events", "events")
    return text, chosen


def create_endpoint(url: object, events: list[str]) -> WebhookEndpoint:
    """A new enabled endpoint with a fresh secret; the caller commits."""
    clean_url, chosen = clean_endpoint(url, events)
    endpoint = WebhookEndpoint(
        url=clean_url,
        secret=new_secret(),
        events=" ".join(chosen),
        enabled=True,
        consecutive_failures=0,
    )
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def enable_endpoint(endpoint: WebhookEndpoint) -> None:
    endpoint.enabled = True
    endpoint.disabled_at = None
    endpoint.consecutive_failures = 0


def disable_endpoint(endpoint: WebhookEndpoint, now: datetime | None = None) -> None:
    endpoint.enabled = False
    endpoint.disabled_at = now or utcnow()


def event_body(event_type: str, timestamp: str, data: dict[str, Any]) -> str:
    """The JSON a delivery posts (and signs): compact, keys sorted, so it is one fixed text."""
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data},
        sort_keys=True,
        separators=(",", ":"),
    )


def forget_subscriber(subscriber_id: int, email: str) -> int:
    """Take an erased subscriber's address out of every stored delivery, queued or done
    (GDPR art. 17); returns how many were rewritten. The caller commits.

    The rows stay, naming the subscriber by id only: the log still shows what was sent, and a
    queued event still goes out (a receiver learns that subscriber N left, not who N was)."""
    by_id = f'"id":{int(subscriber_id)},'  # how event_body writes it inside "data"
    rows = db.session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.event_type.startswith("subscriber."),
            or_(
                WebhookDelivery.body.contains(by_id, autoescape=True),
                WebhookDelivery.body.contains(json.dumps(email)[1:-1], autoescape=True),
            ),
        )
    )
    rewritten = 0
    for delivery in rows:
        payload = json.loads(delivery.body)
        data = payload.get("data") or {}
        named = str(data.get("email") or "").casefold() == email.casefold()
        if data.get("id") != subscriber_id and not named:
            continue
        data["email"] = None
        delivery.body = event_body(payload["type"], payload["timestamp"], data)
        rewritten += 1
    return rewritten


def emit_event(event_type: str, data: dict[str, Any], now: datetime | None = None) -> int:
    """Queue ``event_type`` for every enabled endpoint that wants it; returns how many.

    Runs in the caller's transaction; the caller commits with its change."""
    if event_type not in WEBHOOK_EVENTS:
        raise ValueError(event_type)
    endpoints = db.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
    ).all()
    wanted = [e for e in endpoints if event_type in e.events.split()]
    if not wanted:
        return 0
    now = now or utcnow()
    body = event_body(event_type, now.isoformat() + "Z", data)
    for endpoint in wanted:
        db.session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                message_id="msg_" + secrets.token_urlsafe(18),
                event_type=event_type,
                body=body,
                status="queued",
                attempts=0,
                next_attempt_at=now,
            )
        )
    return len(wanted)


@dataclass(frozen=True)
class ClaimedWebhook:
    id: int
    endpoint_id: int
    url: str
    secret: str
    message_id: str
    body: str


def _due_ids(now: datetime) -> Select[tuple[int]]:
    """Ids of the queued deliveries due at ``now`` for enabled endpoints."""
    return (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookEndpoint.enabled.is_(True),
            WebhookDelivery.status == "queued",
            WebhookDelivery.next_attempt_at <= now,
        )
    )


def _unleased(now: datetime) -> ColumnElement[bool]:
    """No worker holds the delivery: never leased, or its lease has lapsed."""
    return or_(WebhookDelivery.lease_expires_at.is_(None), WebhookDelivery.lease_expires_at < now)


def claim_due(now: datetime, lease: timedelta, limit: int = 20) -> list[ClaimedWebhook]:
    """Take up to ``limit`` due deliveries of enabled endpoints; the caller commits.

    A claim is a lease (``lease_expires_at``): a worker that dies mid-post gives them back.
    The conditional UPDATE makes two workers never claim the same row."""
    rows = db.session.execute(
        _due_ids(now)
        .where(_unleased(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    ).scalars()
    claimed = []
    for delivery_id in list(rows):
        taken = db.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "queued",
                _unleased(now),
            )
            .values(lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount:
            delivery = db.session.get(WebhookDelivery, delivery_id)
            endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
            claimed.append(
                ClaimedWebhook(
                    delivery.id,
                    endpoint.id,
                    endpoint.url,
                    endpoint.secret,
                    delivery.message_id,
                    delivery.body,
                )
            )
    return claimed


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """Wait before attempt ``attempts + 1``: base, 2×base, 4×base... capped."""
    seconds = base_seconds * (2 ** max(0, attempts - 1))
    return min(timedelta(seconds=seconds), WEBHOOK_BACKOFF_CAP)


def record_attempt(
    delivery_id: int,
    *,
    ok: bool,
    status_code: int | None,
    error: str | None,
    now: datetime,
    retry_seconds: float,
    max_failures: int,
) -> None:
    """Write one attempt's outcome; disables the endpoint after ``max_failures`` in a row.

    The caller commits."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.lease_expires_at = None
    if ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.last_error = None
        endpoint.consecutive_failures = 0
        return
    delivery.last_error = (error or "")[:500] or None
    endpoint.consecutive_failures += 1
    if endpoint.consecutive_failures >= max_failures:
        delivery.status = "failed"
        disable_endpoint(endpoint, now)
        return
    delivery.next_attempt_at = now + backoff(delivery.attempts, retry_seconds)


def recent_deliveries(endpoint_id: int | None = None, limit: int = 50) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(db.session.scalars(query))


def endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def pending_webhook_count(now: datetime | None = None) -> int:
    """Deliveries due now for enabled endpoints (the worker's "idle" check)."""
    now = now or utcnow()
    return len(db.session.execute(_due_ids(now).limit(1000)).all())
