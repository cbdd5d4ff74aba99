"""What every table module shares: the id type and the clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.orm import mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Current time as naive UTC, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


# The two columns most tables start and end with (SQLAlchemy's annotated-type idiom).
BigPk = Annotated[int, mapped_column(BigId, primary_key=True)]
CreatedAt = Annotated[datetime, mapped_column(DateTime, default=utcnow)]
