"""Login throttling: growing delays per (account, client) and per account, never a lock-out.

An attempt is counted *before* its password is checked, in one guarded UPDATE that refuses
it while the counter's delay runs, and committed at once: simultaneous guesses each take a
turn at the counter, so no more than the allowed number are ever checked. A right password
clears its client's counter. The caller passes the client's address (the domain knows no
request).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from ..config import (
    LOGIN_FAILURE_MEMORY,
    LOGIN_FREE_FAILURES_PER_ACCOUNT,
    LOGIN_FREE_FAILURES_PER_CLIENT,
    LOGIN_THROTTLE_BASE_DELAY,
    LOGIN_THROTTLE_MAX_DELAY,
)
from ..extensions import db
from ..models import LoginThrottle, utcnow


def _account_key(user_id: int) -> str:
    return f"a:{user_id}"


def _client_key(user_id: int, client: str | None) -> str:
    return f"a:{user_id}:{(client or '?')[:64]}"


def delay_after(failures: int, free: int) -> float:
    """Seconds a client waits after ``failures`` counted attempts (0 while under ``free``)."""
    if failures < free:
        return 0.0
    doubled = LOGIN_THROTTLE_BASE_DELAY.total_seconds() * 2 ** min(failures - free, 20)
    return min(doubled, LOGIN_THROTTLE_MAX_DELAY.total_seconds())


def _ensure_row(key: str) -> None:
    table = LoginThrottle.__table__
    dialect = db.session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    db.session.execute(module.insert(table).values(key=key, failures=0).on_conflict_do_nothing())


def _take_turn(key: str, now: datetime, free: int, *, guarded: bool) -> int | None:
    """Count one attempt on ``key``; its new count, or None when its delay still runs
    (``guarded``). Failures older than the memory start again from one."""
    table = LoginThrottle.__table__
    stale = now - LOGIN_FAILURE_MEMORY
    fresh = or_(table.c.last_failure_at.is_(None), table.c.last_failure_at >= stale)
    statement = (
        update(table)
        .where(table.c.key == key)
        .values(
            failures=case((fresh, table.c.failures + 1), else_=1),
            last_failure_at=now,
        )
        .returning(table.c.failures)
    )
    if guarded:
        statement = statement.where(
            or_(table.c.blocked_until.is_(None), table.c.blocked_until <= now, ~fresh)
        )
    count = db.session.execute(statement).scalar()
    if count is None:
        return None
    wait = delay_after(count, free)
    if wait:
        from datetime import timedelta

        db.session.execute(
            update(table)
            .where(table.c.key == key)
            .values(blocked_until=now + timedelta(seconds=wait))
        )
    return count


def reserve_attempt(user_id: int, client: str | None, now: datetime | None = None) -> bool:
    """Count a login attempt on the account from ``client`` and commit; False when this client
    must wait (its own delay, or the account's delay and it has been failing here)."""
    now = now or utcnow()
    client_key, account_key = _client_key(user_id, client), _account_key(user_id)
    _ensure_row(client_key)
    _ensure_row(account_key)
    count = _take_turn(client_key, now, LOGIN_FREE_FAILURES_PER_CLIENT, guarded=True)
    if count is None:
        db.session.commit()
        return False
    # A client with no recent failure here is never held back by the account's throttle.
    failing = count > 1
    allowed = (
        _take_turn(account_key, now, LOGIN_FREE_FAILURES_PER_ACCOUNT, guarded=failing) is not None
    )
    db.session.commit()
    return allowed


def record_success(user_id: int, client: str | None) -> None:
    """A right password: the client's attempt was not a failure; its counter starts again.
    The account's counter keeps the strangers' failures (the caller commits)."""
    table = LoginThrottle.__table__
    db.session.execute(
        update(table)
        .where(table.c.key == _client_key(user_id, client))
        .values(failures=0, blocked_until=None, last_failure_at=None)
    )
    db.session.execute(
        update(table)
        .where(table.c.key == _account_key(user_id), table.c.failures > 0)
        .values(failures=table.c.failures - 1)
    )


def forget_failures(user_id: int) -> None:
    """The owner proved control (a new password): every counter of the account starts again."""
    table = LoginThrottle.__table__
    db.session.execute(
        update(table)
        .where(or_(table.c.key == _account_key(user_id), table.c.key.like(f"a:{user_id}:%")))
        .values(failures=0, blocked_until=None, last_failure_at=None)
    )
