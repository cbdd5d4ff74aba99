"""Two-factor login for staff: TOTP (RFC 6238, pyotp) and single-use recovery codes.

The second factor is a separate step after the password (see ``web.two_factor``): the password
check in ``domain.accounts`` is untouched. Each code tried takes a turn at the same login
throttle as a password (``domain.login_throttle``), counted before the code is checked. A TOTP
code is accepted once (the matched time step is kept, so a code seen over someone's shoulder
cannot be replayed); recovery codes are stored as keyed hashes and each works once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from sqlalchemy import select, update

from ..config import RECOVERY_CODE_COUNT, TOTP_VALID_WINDOW
from ..extensions import db
from ..models import StaffRecoveryCode, StaffTotp, User, utcnow
from .staff import Role, role_of

ISSUER = "Newsletter"
# Roles that must use a second factor when NEWSLETTER_STAFF_2FA=required: they can send to
# the whole list or change who may.
ROLES_REQUIRING_2FA = (Role.OWNER, Role.SENDER)


def enrolment(user: User) -> StaffTotp | None:
    return db.session.get(StaffTotp, user.id)


def is_enrolled(user: User) -> bool:
    row = enrolment(user)
    return row is not None and row.confirmed_at is not None


def must_enrol(user: User, mode: str) -> bool:
    """Whether the configured policy requires this staff member to use a second factor."""
    return mode == "required" and role_of(user) in ROLES_REQUIRING_2FA


def start_enrolment(user: User) -> StaffTotp:
    """The pending (unconfirmed) secret, made on first visit; reloading the page keeps it, so a
    code already scanned stays good. The caller commits."""
    row = enrolment(user)
    if row is None:
        row = StaffTotp(user_id=user.id, secret=pyotp.random_base32())
        db.session.add(row)
        db.session.flush()
    return row


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to, within the accepted window, or None."""
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    timestamp = (
        int(now.timestamp()) if now.tzinfo else int((now - datetime(1970, 1, 1)).total_seconds())
    )
    step = timestamp // totp.interval
    for offset in range(-TOTP_VALID_WINDOW, TOTP_VALID_WINDOW + 1):
        candidate = step + offset
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def check_totp(row: StaffTotp, code: str, now: datetime | None = None) -> bool:
    """Accept a code once: a step at or before the last accepted one is refused (replay)."""
    step = _matching_step(row.secret, code, now or utcnow())
    if step is None or (row.last_step is not None and step <= row.last_step):
        return False
    row.last_step = step
    return True


def _hash_code(code: str, key: str) -> str:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hmac.new(key.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def new_recovery_codes(user: User, key: str) -> list[str]:
    """Replace the recovery codes; returns them in clear, to be shown once. Caller commits."""
    db.session.execute(
        update(StaffRecoveryCode)
        .where(StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)  # 40 bits, shown as xxxxx-xxxxx
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        db.session.add(StaffRecoveryCode(user_id=user.id, code_hash=_hash_code(code, key)))
    return codes


def confirm_enrolment(user: User, code: str, key: str) -> list[str] | None:
    """Turn the pending secret on with a first good code; returns the recovery codes."""
    row = enrolment(user)
    if row is None or row.confirmed_at is not None or not check_totp(row, code):
        return None
    row.confirmed_at = utcnow()
    return new_recovery_codes(user, key)


def use_recovery_code(user: User, code: str, keys: list[str]) -> bool:
    """Spend one recovery code; False when unknown or already used."""
    if not code or len(code) > 64:
        return False
    hashes = [_hash_code(code, key) for key in keys]
    row = db.session.scalar(
        select(StaffRecoveryCode).where(
            StaffRecoveryCode.user_id == user.id,
            StaffRecoveryCode.code_hash.in_(hashes),
            StaffRecoveryCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    # Conditional, so two requests with the same code cannot both spend it.
    spent = db.session.execute(
        update(StaffRecoveryCode)
        .where(StaffRecoveryCode.id == row.id, StaffRecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(spent.rowcount)


def recovery_codes_left(user: User) -> int:
    return len(
        db.session.scalars(
            select(StaffRecoveryCode.id).where(
                StaffRecoveryCode.user_id == user.id, StaffRecoveryCode.used_at.is_(None)
            )
        ).all()
    )


def second_factor_passed(user: User) -> None:
    """A good code: the password's failed-login count starts again too."""
    user.failed_logins = 0
