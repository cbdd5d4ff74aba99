"""The console dashboard's figures: subscribers by status, movements per day, digests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from ..extensions import db
from ..models import Digest, Subscriber, utcnow
from .subscriber_search import STATUSES

# --- Dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DayMovement:
    day: date
    confirmations: int
    departures: int


def status_counts() -> dict[str, int]:
    """Subscribers per status, every status present (zero when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = db.session.execute(
        select(Subscriber.status, func.count(Subscriber.id)).group_by(Subscriber.status)
    )
    for status, count in rows:
        counts[status] = count
    return counts


def _per_day(column, since: datetime) -> dict[date, int]:
    # date() exists in SQLite (a string) and PostgreSQL (a date): normalise through isoformat.
    day = func.date(column)
    rows = db.session.execute(select(day, func.count()).where(column >= since).group_by(day)).all()
    return {date.fromisoformat(str(value)[:10]): count for value, count in rows if value}


def daily_movements(days: int, today: date | None = None) -> list[DayMovement]:
    """Confirmations and departures (unsubscribed or bounced) per UTC day, oldest first.

    Counted from each subscriber's latest state: someone who left and came back counts once,
    on the day of their latest confirmation.
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day)
    confirmed = _per_day(Subscriber.confirmed_at, since)
    unsubscribed = _per_day(Subscriber.unsubscribed_at, since)
    bounced = _per_day(Subscriber.bounced_at, since)
    movements = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        departures = unsubscribed.get(day, 0) + bounced.get(day, 0)
        movements.append(DayMovement(day, confirmed.get(day, 0), departures))
    return movements


def latest_digests(limit: int = 10) -> Sequence[Digest]:
    return db.session.scalars(
        select(Digest).order_by(Digest.send_at.desc(), Digest.id.desc()).limit(limit)
    ).all()
