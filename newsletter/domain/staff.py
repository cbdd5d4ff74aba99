"""Staff roles and what each may do: the one table every check reads (console, API, tokens).

A permission is a ``thing:verb`` string. A role is a set of permissions; an API token carries
scopes, and what it may do is its scopes intersected with its owner's role *at use time*, so
demoting a person demotes their tokens at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from sqlalchemy import func, select

from ..extensions import db
from ..models import User, utcnow


class Role(enum.StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    SENDER = "sender"
    VIEWER = "viewer"


# Every permission, in the order the console lists them.
PERMISSIONS: tuple[str, ...] = (
    "console:read",  # dashboard, subscriber list, releases and digests, read-only
    "subscribers:read",
    "subscribers:write",  # change language or status, erase
    "subscribers:export",
    "subscribers:import",
    "releases:read",
    "releases:write",
    "digests:read",
    "digests:draft",  # previews and test sends to one address
    "digests:send",  # schedule, send now, pause, resume, cancel, recurring schedules
    "staff:manage",  # invite, change roles, disable, see every token
    "tokens:manage",  # one's own API tokens
    "audit:read",
    "webhooks:manage",
)

_READ = {"console:read", "subscribers:read", "releases:read", "digests:read", "tokens:manage"}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OWNER: frozenset(PERMISSIONS),
    Role.EDITOR: frozenset(_READ | {"releases:write", "digests:draft"}),
    Role.SENDER: frozenset(_READ | {"digests:draft", "digests:send"}),
    Role.VIEWER: frozenset(_READ),
}


class StaffError(Exception):
    """A staff change that cannot be made; ``reason`` names why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_role(value: object) -> Role:
    """The role named by ``value``; raises ``StaffError('role')`` for anything else."""
    try:
        return Role(str(value))
    except ValueError:
        raise StaffError("role") from None


def role_of(user: User | None) -> Role | None:
    """The role of an active staff member, None for anyone else (readers, disabled staff)."""
    if user is None or not user.is_staff or user.staff_disabled_at is not None:
        return None
    try:
        return Role(user.staff_role or "")
    except ValueError:
        return None


def permissions_of(user: User | None) -> frozenset[str]:
    role = role_of(user)
    return ROLE_PERMISSIONS[role] if role is not None else frozenset()


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Scopes from a command line or a form (comma or space separated); raises on unknown."""
    scopes: set[str] = set()
    for value in values:
        for scope in value.replace(",", " ").split():
            if scope not in PERMISSIONS:
                raise StaffError("scope")
            scopes.add(scope)
    return frozenset(scopes)


def effective_permissions(user: User | None, scopes: str | None) -> frozenset[str]:
    """What a token may do now: its scopes cut down to its owner's current role."""
    allowed = permissions_of(user)
    if scopes is None:
        return allowed
    return allowed & frozenset(scopes.split())


def staff_members() -> list[User]:
    return list(db.session.scalars(select(User).where(User.is_staff).order_by(User.email_key)))


def active_owner_count() -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.is_staff, User.staff_role == Role.OWNER, User.staff_disabled_at.is_(None))
        )
        or 0
    )


def _keeps_an_owner(user: User) -> None:
    """The last active owner cannot be demoted or disabled: nobody could manage staff after."""
    if role_of(user) == Role.OWNER and active_owner_count() <= 1:
        raise StaffError("last_owner")


def change_role(user: User, role: Role) -> Role | None:
    """Give a staff member another role; returns the old one. The caller commits."""
    if not user.is_staff:
        raise StaffError("not_staff")
    old = role_of(user)
    if role != Role.OWNER:
        _keeps_an_owner(user)
    user.staff_role = role
    return old


def disable_staff(user: User) -> None:
    """End a staff member's sessions and make their tokens useless; the row stays."""
    if not user.is_staff:
        raise StaffError("not_staff")
    _keeps_an_owner(user)
    user.staff_disabled_at = utcnow()
    user.session_version = (user.session_version or 1) + 1


def enable_staff(user: User) -> None:
    if not user.is_staff:
        raise StaffError("not_staff")
    user.staff_disabled_at = None


def accept_invitation(email_key: str, role: Role, password: str, *, policy: str = "site") -> User:
    """Turn an invitation into a staff account; the caller commits.

    A new address gets an account with ``password`` (the policy applies). An existing
    reader account becomes staff only when ``password`` is that account's password, so a
    forwarded invitation cannot take over someone else's account. Raises ``StaffError``
    ('already_staff', 'password') or the accounts errors (``PasswordRejected``...)."""
    from .accounts import create_staff, find_user
    from .addresses import normalise_address
    from .passwords import verify_password

    address = normalise_address(email_key)
    user = find_user(address)
    if user is None:
        return create_staff(address.email, password, policy=policy, role=role)
    if user.is_staff:
        raise StaffError("already_staff")
    if not verify_password(user.password_hash, password).matches:
        raise StaffError("password")
    user.is_staff = True
    user.staff_role = role
    user.staff_disabled_at = None
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user
