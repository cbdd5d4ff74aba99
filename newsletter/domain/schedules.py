"""Recurring digest schedules: checked (``ScheduleRequest``), created, changed, paused and
cancelled. The scheduler (``scheduling``) turns each active one into a job; a run it fires is
a digest (``digests.create_scheduled_run``).

No flask.request here; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import DigestSchedule, ScheduleStatus
from .digests import DigestStateError
from .field_rules import InvalidInput, given, validate
from .recurrence import WEEKDAYS, parse_recurrence
from .releases import iso
from .requests import ScheduleChange, ScheduleRequest
from .wording import Message, translatable


def _cron(request: ScheduleChange, current: DigestSchedule | None) -> str:
    """The cron expression given, or the one ``every`` day/week ``at`` HH:MM (``weekday``)
    stands for, or (when changing other fields) the current one."""
    if request.cron is not None:
        return request.cron
    if request.every is None and request.at is None:
        if current is not None:
            return current.cron
        raise InvalidInput(
            {"cron": translatable("Give a cron expression, or every (day/week) and at (HH:MM).")}
        )
    if request.every is None:
        raise InvalidInput(
            {"every": translatable("One of: day, week (or give a cron expression).")}
        )
    if request.at is None:
        raise InvalidInput({"at": translatable("A time as HH:MM.")})
    hour, minute = int(request.at[:2]), int(request.at[3:])
    if request.every == "day":
        return f"{minute} {hour} * * *"
    if request.weekday is None:
        raise InvalidInput(
            {"weekday": Message("One of: %(choices)s.", choices=", ".join(WEEKDAYS))}
        )
    return f"{minute} {hour} * * {request.weekday}"


def schedule_values(
    data: Mapping[str, Any], *, current: DigestSchedule | None = None
) -> dict[str, Any]:
    """Model attributes of a schedule (all fields when creating, the given ones when changing)."""
    if current is None:
        request: ScheduleChange = validate(ScheduleRequest, data)
        values = {"language": request.language, "subject": request.subject}
        timezone = request.timezone
    else:
        request = validate(ScheduleChange, data)
        values = {
            name: value for name, value in given(request).items() if name in ("language", "subject")
        }
        timezone = request.timezone if "timezone" in request.model_fields_set else current.timezone
    cron = _cron(request, current)
    try:
        parse_recurrence(cron, timezone)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            {"cron": Message("Not a valid cron expression: %(reason)s", reason=str(exc))}
        ) from None
    return {**values, "timezone": timezone, "cron": cron}


def create_schedule(data: Mapping[str, Any]) -> DigestSchedule:
    schedule = DigestSchedule(status=ScheduleStatus.ACTIVE, **schedule_values(data))
    db.session.add(schedule)
    db.session.flush()
    return schedule


def update_schedule(schedule: DigestSchedule, data: Mapping[str, Any]) -> DigestSchedule:
    if schedule.status == ScheduleStatus.CANCELLED:
        raise DigestStateError("A cancelled schedule cannot be changed.")
    for name, value in schedule_values(data, current=schedule).items():
        setattr(schedule, name, value)
    db.session.flush()
    return schedule


def set_schedule_status(schedule: DigestSchedule, status: str) -> None:
    """Pause, resume (active) or cancel a schedule; a cancelled one stays cancelled."""
    if schedule.status == ScheduleStatus.CANCELLED:
        raise DigestStateError("This schedule is cancelled.")
    schedule.status = status


def schedule_as_dict(
    schedule: DigestSchedule, next_run_at: datetime | None = None
) -> dict[str, Any]:
    """The schedule as the API shows it; ``next_run_at`` (naive UTC) comes from the trigger."""
    return {
        "id": schedule.id,
        "language": schedule.language,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "subject": schedule.subject,
        "status": schedule.status,
        "next_run_at": iso(next_run_at) if schedule.status == ScheduleStatus.ACTIVE else None,
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.updated_at),
    }


def schedules_query(status: str | None = None):
    query = select(DigestSchedule).order_by(DigestSchedule.id)
    if status:
        query = query.where(DigestSchedule.status == status)
    return query
