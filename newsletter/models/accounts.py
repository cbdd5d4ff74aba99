"""Site accounts and what guards them: one-time codes, API tokens, login throttles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..config import DEFAULT_LANGUAGE
from ..extensions import db
from .base import BigPk, CreatedAt


class User(db.Model):
    """A site account (media professionals, and staff)."""

    __tablename__ = "users"

    id: Mapped[BigPk]
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[CreatedAt]
    # Bumped when the password changes: sessions carrying an older value are ended.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Staff (issue 14): the role when ``is_staff`` (owner, editor, sender, viewer); a disabled
    # staff member keeps the row (the audit log names them) but can no longer act.
    staff_role: Mapped[str | None] = mapped_column(String(16))
    staff_disabled_at: Mapped[datetime | None] = mapped_column(DateTime)

    # Flask-Login protocol, kept here so the web layer needs no wrapper.
    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class OneTimeCode(db.Model):
    """A short emailed code (reset, email verification); only its keyed hash is stored."""

    __tablename__ = "one_time_codes"

    id: Mapped[BigPk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(128))
    # For an email change: the address being verified.
    new_email: Mapped[str | None] = mapped_column(String(320))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[CreatedAt]
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when a newer code replaced this one, or it was spent or tried too often.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_one_time_codes_user_purpose", "user_id", "purpose", "created_at"),)


class ApiToken(db.Model):
    """A staff API token; only its SHA-256 is stored, so a leaked table leaks no token."""

    __tablename__ = "api_tokens"

    id: Mapped[BigPk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[CreatedAt]
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Space-separated permissions; at use time they are cut down to the owner's current role.
    # NULL (tokens from before scopes existed): the role's permissions.
    scopes: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class LoginThrottle(db.Model):
    """Failed logins counted per (account, client address) and per account, with the time
    before which a throttled client may not try again. Rows are keyed ``a:<user id>`` and
    ``a:<user id>:<ip>``; an attempt is counted before the password is checked, in one
    guarded UPDATE, so simultaneous guesses cannot all slip through."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime)
