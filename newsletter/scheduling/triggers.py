"""A schedule's ``Recurrence`` (domain) as APScheduler's trigger, and its next fire time.

Pure arithmetic, no scheduler: web processes import this module (and only this one of the
scheduling package) to show when a schedule runs next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from ..domain.recurrence import Recurrence, parse_recurrence
from ..models import DigestSchedule, utcnow


def cron_trigger(recurrence: Recurrence) -> CronTrigger:
    return CronTrigger(
        second=recurrence.second,
        minute=recurrence.minute,
        hour=recurrence.hour,
        day=recurrence.day,
        month=recurrence.month,
        day_of_week=recurrence.day_of_week,
        timezone=ZoneInfo(recurrence.timezone),
    )


def schedule_trigger(schedule: DigestSchedule) -> CronTrigger:
    """The trigger a schedule's job runs on; ValueError for a stored expression gone bad."""
    return cron_trigger(parse_recurrence(schedule.cron, schedule.timezone))


def next_fire_time(schedule: DigestSchedule, now: datetime | None = None) -> datetime | None:
    """When the schedule fires next (naive UTC), or None (no more fire times, or a bad stored
    expression: the page still shows the schedule)."""
    try:
        fire = schedule_trigger(schedule).get_next_fire_time(
            None, (now or utcnow()).replace(tzinfo=UTC)
        )
    except ValueError:
        return None
    return fire.astimezone(UTC).replace(tzinfo=None) if fire else None
