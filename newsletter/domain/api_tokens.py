"""Staff API tokens: shown once, stored as SHA-256, scoped, expiring, revocable.

A token's scopes never widen its owner's role: what it may do is computed at use time as
``scopes ∩ permissions of the owner's current role`` (``domain.staff.effective_permissions``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from ..extensions import db
from ..models import ApiToken, User, utcnow
from .staff import permissions_of

TOKEN_PREFIX = "nlt_"  # noqa: S105 - a public prefix, recognisable by secret scanners


def hash_api_token(token: str) -> str:
    # Tokens carry 256 random bits: a plain SHA-256 is enough, no slow hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(
    user: User,
    name: str | None = None,
    *,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Create a token for ``user``; the caller shows it once and commits.

    Without ``scopes`` the token gets every permission of the owner's role today; named
    scopes are kept as asked (they are cut down to the role at each use anyway)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    chosen = sorted(set(scopes) if scopes is not None else permissions_of(user))
    db.session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_api_token(token),
            name=name,
            scopes=" ".join(chosen),
            expires_at=expires_at,
        )
    )
    return token


def api_token_row(token: str) -> ApiToken | None:
    """The live (not revoked, not expired) token row of an active staff member, or None;
    records the time of use (the caller commits)."""
    if not token or len(token) > 200:
        return None
    row = db.session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_api_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None or not row.user.is_staff or row.user.staff_disabled_at is not None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        return None
    row.last_used_at = now
    return row


def user_for_api_token(token: str) -> User | None:
    """The staff user a live token belongs to, or None."""
    row = api_token_row(token)
    return row.user if row is not None else None


def tokens_of(user: User | None = None) -> list[ApiToken]:
    """Tokens, newest first: one person's, or everyone's (``user`` None)."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def revoke_api_token(row: ApiToken) -> bool:
    """Revoke one token; False when it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def revoke_api_tokens(user: User) -> int:
    """Revoke every live token of ``user``; returns how many."""
    rows = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)
