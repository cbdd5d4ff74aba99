"""Times typed in the console's forms: a ``datetime-local`` value read in a named time zone,
and the zone names the forms offer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask_babel import gettext as _

from ...config import DEFAULT_TIMEZONE
from ...domain.releases import InvalidInput
from .console import blueprint


def _unknown_zone() -> InvalidInput:
    return InvalidInput({"timezone": _("Unknown time zone; use a name such as Europe/Brussels.")})


def local_time_to_iso(value: str, timezone: str, field: str) -> str:
    """A ``datetime-local`` value read in ``timezone``, as ISO 8601 with its UTC offset."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _unknown_zone() from None
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput({field: _("Give a date and a time.")}) from None
    if naive.tzinfo is not None:
        raise InvalidInput({field: _("Give a date and a time.")})
    aware = naive.replace(tzinfo=zone)
    try:
        in_utc = aware.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
        raise InvalidInput({field: _("Give a date and a time.")}) from None
    if not 1970 <= in_utc.year <= 9999:
        raise InvalidInput({field: _("Give a date and a time.")})
    return aware.isoformat()


def utc_to_local_input(value: datetime | None, timezone: str) -> str:
    """Naive UTC as a ``datetime-local`` value in ``timezone``."""
    if value is None:
        return ""
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%dT%H:%M")


def zone_of_form(form: Mapping[str, str]) -> str:
    """The form's time zone (the default when left empty); an unknown name is a field error."""
    timezone = (form.get("timezone") or DEFAULT_TIMEZONE).strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _unknown_zone() from None
    return timezone


@cache
def _sorted_time_zones() -> tuple[str, ...]:
    # Reading the zone database costs ~13 ms; it does not change while the process runs.
    return tuple(sorted(available_timezones()))


@blueprint.context_processor
def zone_names() -> dict[str, Any]:
    return {"time_zones": _sorted_time_zones(), "default_timezone": DEFAULT_TIMEZONE}
