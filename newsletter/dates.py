"""Dates written the way each language writes them, shared by pages, emails and subjects.

French writes the first day of a month as an ordinal: "1er décembre 2026", never
"1 décembre 2026"; Babel's CLDR patterns do not, so the day field is patched for day 1.
This module imports nothing of ours, so the domain and mail layers can both use it.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from babel.dates import format_date as babel_format_date
from babel.dates import get_date_format

# A lone "d" (day of month, not "dd") outside quoted literals in a CLDR pattern.
_DAY_FIELD = re.compile(r"(?<![d'])d(?![d'])")


def format_date(value: date | datetime, language: str, fmt: str = "long") -> str:
    """``value`` as ``fmt`` (short, medium, long, full) in ``language``; "1er" in French."""
    if language.startswith("fr") and value.day == 1 and fmt in ("medium", "long", "full"):
        pattern = get_date_format(fmt, locale=language).pattern
        return babel_format_date(value, _DAY_FIELD.sub("d'er'", pattern, count=1), locale=language)
    return babel_format_date(value, format=fmt, locale=language)


def press_dateline(place: str | None, value: date | datetime, language: str) -> str:
    """The press-release line: "Rome, 14 janvier 2026" (just the date when no place)."""
    when = format_date(value, language)
    return f"{place}, {when}" if place else when
