"""Recurring schedules described in the domain (issue 15): crontab's syntax and meaning,
weekday numbers as crontab counts them, and a trigger in ``scheduling`` that fires then."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from newsletter.domain.recurrence import parse_recurrence
from newsletter.scheduling.triggers import cron_trigger
from tests.test_api_staff import api, token  # noqa: F401 - fixtures

BRUSSELS = ZoneInfo("Europe/Brussels")
SUNDAY = datetime(2026, 12, 6, 12, 0, tzinfo=BRUSSELS)


def next_fire(expression: str, after: datetime = SUNDAY) -> datetime:
    trigger = cron_trigger(parse_recurrence(expression, "Europe/Brussels"))
    return trigger.get_next_fire_time(None, after).astimezone(BRUSSELS)


@pytest.mark.parametrize(
    ("expression", "weekday"),
    [
        ("0 8 * * 1", "Monday"),
        ("0 8 * * 0", "Sunday"),
        ("0 8 * * 7", "Sunday"),
        ("0 8 * * 5", "Friday"),
        ("0 8 * * mon", "Monday"),
        ("0 8 * * FRI", "Friday"),
    ],
)
def test_weekday_numbers_mean_what_crontab_says(expression, weekday):
    # APScheduler 3's own numbering starts at Monday = 0: "0 8 * * 1" would fire on Tuesday.
    fire = next_fire(expression, after=datetime(2026, 12, 5, 12, 0, tzinfo=BRUSSELS))
    assert fire.strftime("%A") == weekday and (fire.hour, fire.minute) == (8, 0)


def test_weekday_ranges_and_steps_follow_crontab_numbering():
    assert parse_recurrence("0 8 * * 1-5", "UTC").day_of_week == "mon,tue,wed,thu,fri"
    assert parse_recurrence("0 8 * * 0-6", "UTC").day_of_week == "mon,tue,wed,thu,fri,sat,sun"
    assert parse_recurrence("0 8 * * */2", "UTC").day_of_week == "tue,thu,sat,sun"
    assert parse_recurrence("0 8 * * sat,sun", "UTC").day_of_week == "sat,sun"
    assert parse_recurrence("0 8 * * *", "UTC").day_of_week == "*"


@pytest.mark.parametrize(
    "expression",
    [
        "30 8 * * mon",
        "0 7 * * *",
        "*/15 6-22 * * mon-fri",
        "0 9 1 * *",
        "0 9 1,15 jan-jun *",
        "15 30 8 * * *",
        "0 0 29 2 *",
        "5/10 * * * *",
    ],
)
def test_what_the_domain_accepts_fires_as_apscheduler_reads_it(expression):
    """Same fire times as APScheduler's own crontab reading, where the two agree (names)."""
    fields = expression.split()
    if len(fields) == 5:
        reference = CronTrigger.from_crontab(expression, timezone=BRUSSELS)
    else:
        names = ("second", "minute", "hour", "day", "month", "day_of_week")
        reference = CronTrigger(**dict(zip(names, fields, strict=True)), timezone=BRUSSELS)
    ours = cron_trigger(parse_recurrence(expression, "Europe/Brussels"))
    mine, theirs = SUNDAY, SUNDAY
    for _ in range(5):
        mine = ours.get_next_fire_time(None, mine)
        theirs = reference.get_next_fire_time(None, theirs)
        assert mine == theirs, expression
        mine, theirs = mine.replace(microsecond=1), theirs.replace(microsecond=1)


@pytest.mark.parametrize(
    ("expression", "timezone", "says"),
    [
        ("61 * * * *", "UTC", "minute: values run from 0 to 59"),
        ("* * * *", "UTC", "expected 5 fields"),
        ("5-1 * * * *", "UTC", "runs backwards"),
        ("*/0 * * * *", "UTC", "a step must be at least 1"),
        ("x * * * *", "UTC", "not a number or a name"),
        ("0 8 * * funday", "UTC", "not a number or a name"),
        ("0 8 * 13 *", "UTC", "month: values run from 1 to 12"),
        ("0 8 * * 1;rm", "UTC", "not understood"),
        ("0 8 * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(expression, timezone, says):
    with pytest.raises(ValueError, match=says):
        parse_recurrence(expression, timezone)


def test_a_schedule_on_weekday_1_runs_next_on_a_monday_through_the_api(app, api):  # noqa: F811
    created = api.post("/api/v1/schedules", json={"language": "fr", "cron": "0 8 * * 1"})
    assert created.status_code == 201, created.get_json()
    next_run = datetime.fromisoformat(created.get_json()["next_run_at"].replace("Z", "+00:00"))
    assert next_run.astimezone(BRUSSELS).strftime("%A %H:%M") == "Monday 08:00"
    refused = api.post("/api/v1/schedules", json={"language": "fr", "cron": "0 8 * * 8"})
    assert refused.status_code == 422
    assert "values run from 0 to 7" in refused.get_json()["error"]["fields"]["cron"]
    assert next_run.tzinfo == UTC
