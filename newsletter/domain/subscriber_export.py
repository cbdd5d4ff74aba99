"""The subscriber list as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime

from ..extensions import db
from .subscriber_search import SubscriberFilter

# --- CSV export ---------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "status",
    "created_at",
    "consent_at",
    "consent_ip",
    "consent_page",
    "consent_source",
    "confirmed_at",
    "confirmed_ip",
    "unsubscribed_at",
    "unsubscribe_method",
    "bounced_at",
)
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A cell as text; text a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def export_lines(subscriber_filter: SubscriberFilter, batch_size: int = 1000) -> Iterator[str]:
    """The CSV file, line by line, reading the table in batches so any size fits in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Sequence[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(EXPORT_COLUMNS)
    statement = subscriber_filter.statement().execution_options(yield_per=batch_size)
    for subscriber in db.session.scalars(statement):
        yield line([spreadsheet_safe(getattr(subscriber, column)) for column in EXPORT_COLUMNS])
