"""One page of any listing (API, console, public archive), and the query that fetches it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from ..config import MAX_PAGE_SIZE
from ..extensions import db

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, with what a client needs to ask for the next one."""

    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page)) if self.per_page else 1

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(query: Select[Any], *, page: int, per_page: int) -> Page[Any]:
    """Run ``query`` for one page (1-based; a page past the end is empty); ``per_page`` is
    capped at ``MAX_PAGE_SIZE``."""
    page = max(1, page)
    per_page = max(1, min(per_page, MAX_PAGE_SIZE))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, page=page, per_page=per_page, total=total or 0)
