"""Per-address caps on the emails a stranger can make us send, counted in the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ScalarSelect, func, select

from ..extensions import db
from ..models import OutboxMessage, utcnow

CAP_WINDOW = timedelta(days=1)


def emails_sent_since(recipient_key: Any, kind: str, since: Any) -> ScalarSelect[int]:
    """How many emails of ``kind`` went to this address since ``since``, as a SQL expression
    (values or bind parameters), so a statement can count them in the same round trip."""
    return (
        select(func.count(OutboxMessage.id))
        .where(
            OutboxMessage.recipient_key == recipient_key,
            OutboxMessage.kind == kind,
            OutboxMessage.created_at >= since,
        )
        .scalar_subquery()
    )


def cap_window_start(now: datetime | None = None) -> datetime:
    return (now or utcnow()) - CAP_WINDOW


def under_daily_cap(recipient_key: str, kind: str, cap: int) -> bool:
    """True while fewer than ``cap`` emails of ``kind`` went to this address in 24 hours."""
    sent = db.session.scalar(select(emails_sent_since(recipient_key, kind, cap_window_start())))
    return (sent or 0) < cap
