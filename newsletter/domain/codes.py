"""Short emailed one-time codes (email verification, password reset, email change).

A code is 6 digits from ``secrets``; only a keyed HMAC of it is stored (the key comes from the
app's secret key, so a leaked table cannot be brute-forced offline). A code lives for its
purpose's lifetime, is spent by its first correct use, dies after ``CODE_MAX_ATTEMPTS`` tries,
and is revoked when a newer code for the same purpose is issued. Issuing obeys a cooldown and
an hourly cap per account and purpose.

Every state change is a guarded ``UPDATE ... WHERE`` so two requests racing on one code cannot
both spend it or exceed the try limit; callers commit.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update

from ..config import (
    CODE_DIGITS,
    CODE_LIFETIMES,
    CODE_MAX_ATTEMPTS,
    CODE_RESEND_COOLDOWN,
    CODES_PER_ADDRESS_PER_HOUR,
)
from ..extensions import db
from ..models import OneTimeCode, User, utcnow

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a code purpose
CHANGE_EMAIL = "change_email"


def generate_code() -> str:
    """``CODE_DIGITS`` uniformly random digits from the OS's secure source."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def normalise_code(raw: object) -> str | None:
    """The digits someone typed, tolerating spaces and dashes; None when it cannot be a code."""
    if not isinstance(raw, str) or len(raw) > 32:
        return None
    digits = "".join(ch for ch in raw if ch not in " -\t")
    if len(digits) != CODE_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def code_hash(key: str, purpose: str, user_id: int, code: str) -> str:
    """Keyed HMAC-SHA256 of the code, bound to its purpose and account."""
    message = f"{purpose}\x1f{user_id}\x1f{code}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


class IssueRefused(enum.StrEnum):
    COOLDOWN = "cooldown"
    HOURLY_CAP = "hourly_cap"


@dataclass(frozen=True)
class IssuedCode:
    row: OneTimeCode
    code: str  # the clear code, to be emailed and then forgotten


def issue_refusal(user: User, purpose: str, now: datetime | None = None) -> IssueRefused | None:
    """Why a new code cannot be sent right now, or None when it can."""
    now = now or utcnow()
    latest, count = db.session.execute(
        select(func.max(OneTimeCode.created_at), func.count(OneTimeCode.id)).where(
            OneTimeCode.user_id == user.id,
            OneTimeCode.purpose == purpose,
            OneTimeCode.created_at > now - timedelta(hours=1),
        )
    ).one()
    if latest is not None and latest > now - CODE_RESEND_COOLDOWN:
        return IssueRefused.COOLDOWN
    if count >= CODES_PER_ADDRESS_PER_HOUR:
        return IssueRefused.HOURLY_CAP
    return None


def issue_code(
    user: User,
    purpose: str,
    key: str,
    *,
    new_email: str | None = None,
    now: datetime | None = None,
    enforce_limits: bool = True,
) -> IssuedCode | IssueRefused:
    """A fresh code replacing any live one for ``purpose``, unless cooldown or cap refuse."""
    now = now or utcnow()
    if enforce_limits:
        refusal = issue_refusal(user, purpose, now)
        if refusal is not None:
            return refusal
    revoke_codes(user, purpose, now=now)
    code = generate_code()
    row = OneTimeCode(
        user_id=user.id,
        purpose=purpose,
        code_hash=code_hash(key, purpose, user.id, code),
        new_email=new_email,
        attempts=0,
        created_at=now,
        expires_at=now + CODE_LIFETIMES[purpose],
    )
    db.session.add(row)
    db.session.flush()
    return IssuedCode(row=row, code=code)


def revoke_codes(user: User, purpose: str | None = None, *, now: datetime | None = None) -> None:
    """Kill every live code of ``user`` (for one purpose, or all)."""
    conditions = [OneTimeCode.user_id == user.id, *_unspent()]
    if purpose is not None:
        conditions.append(OneTimeCode.purpose == purpose)
    db.session.execute(
        update(OneTimeCode)
        .where(*conditions)
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


class CodeState(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"  # no live code, a wrong code, or a code tried too often: one answer for all
    EXPIRED = "expired"


@dataclass(frozen=True)
class CodeCheck:
    state: CodeState
    row: OneTimeCode | None = None

    @property
    def ok(self) -> bool:
        return self.state == CodeState.OK


# No account and no code has this id (ids start at 1): an unknown address, or one with no live
# code, runs the same statements as a registered one, matching no row (issue 11).
NO_ROW_ID = 0
# Compared against when there is no code, so a wrong answer costs the same HMAC work either way.
_NO_CODE_HASH = "0" * 64


def live_code(user: User, purpose: str) -> OneTimeCode | None:
    """The newest unspent, unrevoked code of ``user`` for ``purpose``."""
    return _live_code(user.id, purpose)


def _unspent() -> tuple[ColumnElement[bool], ...]:
    return (OneTimeCode.used_at.is_(None), OneTimeCode.revoked_at.is_(None))


def _newest_live(statement: Select[Any], user_id: int, purpose: str) -> Select[Any]:
    """``statement`` narrowed to the newest unspent, unrevoked code of the user for ``purpose``."""
    return (
        statement.where(
            OneTimeCode.user_id == user_id, OneTimeCode.purpose == purpose, *_unspent()
        )
        .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id.desc())
        .limit(1)
    )


def _live_code(user_id: int, purpose: str) -> OneTimeCode | None:
    return db.session.scalar(_newest_live(select(OneTimeCode), user_id, purpose))


def _update_unspent(row_id: int, *conditions: ColumnElement[bool], **values: Any) -> bool:
    """Set ``values`` on the code if it is still unspent (and meets ``conditions``)."""
    result = db.session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == row_id, *_unspent(), *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _claim_try(row_id: int) -> bool:
    """Count one try against the code; False when it is spent, revoked or out of tries."""
    return _update_unspent(
        row_id, OneTimeCode.attempts < CODE_MAX_ATTEMPTS, attempts=OneTimeCode.attempts + 1
    )


def _spend(row_id: int, now: datetime) -> bool:
    return _update_unspent(row_id, used_at=now)


def check_code(
    user: User | None,
    purpose: str,
    code: object,
    keys: Sequence[str],
    *,
    now: datetime | None = None,
) -> CodeCheck:
    """Check and, when right, spend the live code; each call costs the code one try.

    ``keys`` are the current key then older ones, so a code survives a key rotation. The
    ``CODE_MAX_ATTEMPTS``-th try is the last: after it the code is dead even if the next
    guess would be right.

    Without an account or a live code the same statements run (matching no row) and the same
    HMAC is compared, so the time of a wrong answer does not tell whether the address has an
    account (issue 11). The try is counted by a guarded ``UPDATE`` that keeps the code's row
    locked until the caller commits, so simultaneous guesses stay within the limit.
    """
    return check_code_of(user.id if user is not None else None, purpose, code, keys, now=now)


def check_code_of(
    user_id: int | None,
    purpose: str,
    code: object,
    keys: Sequence[str],
    *,
    now: datetime | None = None,
) -> CodeCheck:
    """``check_code`` for an account known by its id (None: no account)."""
    now = now or utcnow()
    user_id = user_id if user_id is not None else NO_ROW_ID
    # Three columns or nothing (no loaded object to build only when there is a code).
    row = db.session.execute(
        _newest_live(
            select(OneTimeCode.id, OneTimeCode.code_hash, OneTimeCode.expires_at),
            user_id,
            purpose,
        )
    ).first()
    expired = row is not None and row.expires_at <= now
    row_id = row.id if row is not None and not expired else NO_ROW_ID
    stored = row.code_hash if row is not None and not expired else _NO_CODE_HASH
    digits = normalise_code(code)
    claimed = _claim_try(row_id)
    matches = digits is not None and any(
        hmac.compare_digest(stored, code_hash(key, purpose, user_id, digits)) for key in keys
    )
    if claimed and matches and _spend(row_id, now):
        return CodeCheck(CodeState.OK, db.session.get(OneTimeCode, row_id, populate_existing=True))
    db.session.execute(
        # Out of tries: mark the code revoked so it shows as dead, not merely unused.
        update(OneTimeCode)
        .where(OneTimeCode.id == row_id, OneTimeCode.attempts >= CODE_MAX_ATTEMPTS)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if expired and row is not None:
        return CodeCheck(CodeState.EXPIRED, db.session.get(OneTimeCode, row.id))
    return CodeCheck(CodeState.WRONG)


def spend_code_row(row_id: int, *, now: datetime | None = None) -> OneTimeCode | None:
    """Spend a code by its id (an emailed link names it): once only, and only while live."""
    now = now or utcnow()
    row = db.session.get(OneTimeCode, row_id)
    if row is None or row.expires_at <= now:
        return None
    if not _spend(row_id, now):
        return None
    db.session.refresh(row)
    return row


def code_row_is_live(row_id: object, purpose: str, now: datetime | None = None) -> bool:
    """Whether the code an emailed link names can still be used."""
    if not isinstance(row_id, int):
        return False
    row = db.session.get(OneTimeCode, row_id)
    now = now or utcnow()
    return (
        row is not None
        and row.purpose == purpose
        and row.used_at is None
        and row.revoked_at is None
        and row.expires_at > now
    )
