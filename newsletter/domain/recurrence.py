"""When a recurring schedule fires, described without the scheduler (issue 15).

A schedule keeps the cron expression staff typed; ``parse_recurrence`` checks it and turns it
into a ``Recurrence``: one normalised value per field, the weekdays always as names. Names
because crontab and APScheduler 3 number weekdays differently (crontab: 0 and 7 are Sunday;
APScheduler 3: 0 is Monday), so ``0 8 * * 1`` must mean Monday, as every cron reference says.
``scheduling.triggers`` turns a Recurrence into the scheduler's trigger.

The accepted syntax is crontab's: ``*``, numbers, ranges ``a-b``, steps ``/n``, lists ``a,b``,
and English month and weekday abbreviations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# Crontab's numbering: 0 is Sunday (7 too).
CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # as the scheduler and staff list them
FIELD_RANGES = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 7),
}
ITEM = re.compile(
    r"^(?:(?P<all>\*)|(?P<first>[a-z0-9]+)(?:-(?P<last>[a-z0-9]+))?)(?:/(?P<step>\d+))?$"
)


@dataclass(frozen=True)
class Recurrence:
    """Cron fields in a time zone; ``day_of_week`` is ``*`` or a list of weekday names."""

    second: str
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    timezone: str


def parse_recurrence(expression: str, timezone: str) -> Recurrence:
    """Five fields (minute hour day month weekday) or six with seconds first; ValueError if bad."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    fields = expression.lower().split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ValueError("expected 5 fields (minute hour day month weekday) or 6 (seconds first)")
    values = dict(zip(FIELD_RANGES, fields, strict=True))
    for name, value in values.items():
        if name != "day_of_week":
            _field_values(name, value)  # raises when bad
    days = _field_values("day_of_week", values["day_of_week"])
    if days is None:
        weekdays = "*"
    else:
        names = {CRON_WEEKDAYS[day % 7] for day in days}
        weekdays = ",".join(name for name in WEEKDAYS if name in names)
    return Recurrence(
        second=values["second"],
        minute=values["minute"],
        hour=values["hour"],
        day=values["day"],
        month=values["month"],
        day_of_week=weekdays,
        timezone=timezone,
    )


def _number(name: str, token: str) -> int:
    if token.isdigit():
        return int(token)
    names = {"month": MONTHS, "day_of_week": CRON_WEEKDAYS}.get(name)
    if names and token in names:
        return names.index(token) + (1 if name == "month" else 0)
    raise ValueError(f"{name.replace('_', ' ')}: {token!r} is not a number or a name")


def _field_values(name: str, value: str) -> set[int] | None:
    """The numbers ``value`` stands for, or None for ``*`` (every value); ValueError if bad."""
    low, high = FIELD_RANGES[name]
    found: set[int] = set()
    for item in value.split(","):
        match = ITEM.match(item)
        if match is None:
            raise ValueError(f"{name.replace('_', ' ')}: {item!r} is not understood")
        step = int(match["step"]) if match["step"] else 1
        if step < 1:
            raise ValueError(f"{name.replace('_', ' ')}: a step must be at least 1")
        if match["all"]:
            if step == 1 and value == "*":
                return None
            first, last = low, high
        else:
            first = _number(name, match["first"])
            last = _number(name, match["last"]) if match["last"] else first
            if match["step"] and not match["last"]:
                last = high  # "5/10": from 5, every 10
        if not (low <= first <= high and low <= last <= high):
            raise ValueError(f"{name.replace('_', ' ')}: values run from {low} to {high}")
        if first > last:
            raise ValueError(f"{name.replace('_', ' ')}: {item!r} runs backwards")
        found.update(range(first, last + 1, step))
    return found
