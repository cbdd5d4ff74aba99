"""Dates and times written the way each language writes them."""

from __future__ import annotations

from datetime import datetime

from ..dates import format_date as _format_date


def format_date(value: datetime, language: str, fmt: str = "long") -> str:
    """The date in ``language``; French writes the first of the month "1er"."""
    return _format_date(value, language, fmt)
