"""Finding subscribers in the staff console: the filter behind the list and the export."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select

from ..config import (
    LANGUAGES,
)
from ..models import Subscriber, SubscriberStatus
from .paging import Page, paginate
from .subscriptions import InvalidField
from .wording import translatable

STATUSES = tuple(status.value for status in SubscriberStatus)

# --- Subscriber search -------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberFilter:
    """What the staff member typed or picked; empty means "any"."""

    query: str = ""
    status: str = ""
    language: str = ""

    def __post_init__(self) -> None:
        if self.status and self.status not in STATUSES:
            raise InvalidField(
                "status", translatable("Choose one of: %(choices)s."), choices=", ".join(STATUSES)
            )
        if self.language and self.language not in LANGUAGES:
            raise InvalidField(
                "language",
                translatable("Choose one of: %(choices)s."),
                choices=", ".join(LANGUAGES),
            )
        if len(self.query) > 320:
            raise InvalidField("q", translatable("At most %(count)d characters."), count=320)
        # No address holds one, and PostgreSQL refuses NUL in a query parameter outright.
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.query):
            raise InvalidField("q", "Control characters are not allowed.")

    def statement(self) -> Select[tuple[Subscriber]]:
        """Subscribers matching the filter, newest first."""
        statement = select(Subscriber)
        if self.query.strip():
            # The key is case-folded; LIKE wildcards typed by staff are matched literally.
            needle = self.query.strip().casefold()
            statement = statement.where(Subscriber.email_key.contains(needle, autoescape=True))
        if self.status:
            statement = statement.where(Subscriber.status == self.status)
        if self.language:
            statement = statement.where(Subscriber.language == self.language)
        return statement.order_by(Subscriber.id.desc())


def subscriber_page(
    subscriber_filter: SubscriberFilter, number: int, size: int
) -> Page[Subscriber]:
    """One page of the filtered subscribers; a page past the end is simply empty."""
    return paginate(subscriber_filter.statement(), page=number, per_page=size)
