"""Staff API tokens: shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from ..extensions import db
from ..models import ApiToken, User, utcnow

TOKEN_PREFIX = "nlt_"  # noqa: S105 - a public prefix, recognisable by secret scanners


def hash_api_token(token: str) -> str:
    # Tokens carry 256 random bits: a plain SHA-256 is enough, no slow hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(user: User, name: str | None = None) -> str:
    """Create a token for ``user``; the caller shows it once and commits."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=hash_api_token(token), name=name))
    return token


def user_for_api_token(token: str) -> User | None:
    """The staff user a live token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    row = db.session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_api_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if row is None or not row.user.is_staff:
        return None
    row.last_used_at = utcnow()
    return row.user


def revoke_api_tokens(user: User) -> int:
    """Revoke every live token of ``user``; returns how many."""
    rows = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)
