"""Per-address caps on the emails a stranger can make us send, counted in the outbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from ..extensions import db
from ..models import OutboxMessage, utcnow


def under_daily_cap(recipient_key: str, kind: str, cap: int) -> bool:
    """True while fewer than ``cap`` emails of ``kind`` went to this address in 24 hours."""
    since = utcnow() - timedelta(days=1)
    sent = db.session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.recipient_key == recipient_key,
            OutboxMessage.kind == kind,
            OutboxMessage.created_at >= since,
        )
    )
    return (sent or 0) < cap
