"""Applying a planned subscriber import: new rows are written and pending ones get the
double opt-in email, all in the caller's transaction (one import, one commit)."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.subscriber_import import ImportPlan, RowOutcome, new_subscriber_from_row
from ..extensions import db
from .subscriptions import queue_confirmation_email


@dataclass(frozen=True)
class ImportResult:
    confirmed: int
    pending: int
    emails_queued: int


def apply_subscriber_import(plan: ImportPlan) -> ImportResult:
    """Write the plan's importable rows and queue their confirmation emails; the caller commits.

    Malformed, refused and unchanged rows write nothing. If the database refuses a row (someone
    subscribed the same address meanwhile), the caller rolls the whole import back.
    """
    created = [(row, new_subscriber_from_row(row)) for row in plan.to_write]
    db.session.add_all([subscriber for _row, subscriber in created])
    db.session.flush()  # one round trip; confirmation tokens need the subscribers' ids
    confirmed = pending = 0
    for row, subscriber in created:
        if row.outcome == RowOutcome.PENDING:
            queue_confirmation_email(subscriber)
            pending += 1
        else:
            confirmed += 1
    return ImportResult(confirmed=confirmed, pending=pending, emails_queued=pending)
