"""Dates and times written the way each language writes them."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime


def format_date(value: datetime, language: str, fmt: str = "long") -> str:
    return babel_format_date(value, format=fmt, locale=language)


def format_datetime(value: datetime, language: str, fmt: str = "medium") -> str:
    return babel_format_datetime(value, format=fmt, locale=language)
