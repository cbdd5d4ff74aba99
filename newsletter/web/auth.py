"""Who may call staff routes, and what they may do there: the one place where roles are
enforced, for the console and the API alike.

A staff session in the browser acts with its role's permissions; ``Authorization: Bearer``
acts with the token's scopes cut down to its owner's current role (``domain.staff``).
``requires(permission)`` guards a view; templates ask ``can(permission)`` to hide what a role
cannot do. ``audit(...)`` records a change with the actor and address of this request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from flask import g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..domain import audit as audit_log
from ..domain.api_tokens import api_token_row
from ..domain.staff import effective_permissions, permissions_of, role_of
from ..extensions import db
from ..models import AuditEntry, User
from .inputs import InputError, wants_json

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_staff() -> User | None:
    """The active staff member making this request, by token or by session; sets
    ``g.api_token`` (the token row, or None) and ``g.permissions``."""
    # Cached per request (not on ``g``: a test's app context outlives many requests).
    if request.environ.get("newsletter.staff_checked"):
        return g.get("staff")
    request.environ["newsletter.staff_checked"] = True
    g.api_token = None
    g.permissions = frozenset()
    g.staff = None
    token = bearer_token()
    if token is not None:
        row = api_token_row(token)
        if row is None:
            return None
        db.session.commit()  # records last_used_at
        g.api_token = row
        g.permissions = effective_permissions(row.user, row.scopes)
        g.staff = row.user
        return row.user
    if current_user.is_authenticated and role_of(current_user) is not None:
        user = current_user._get_current_object()
        g.permissions = permissions_of(user)
        g.staff = user
        return user
    return None


def can(permission: str) -> bool:
    """Whether this request's staff member (or token) may do ``permission``."""
    current_staff()
    return permission in g.get("permissions", frozenset())


def _deny_anonymous() -> Any:
    """401 for no credentials (login page for browsers), 403 for a non-staff account."""
    if bearer_token() is None and current_user.is_authenticated:
        raise InputError(403, "forbidden", _("This area is for staff only."))
    if bearer_token() is None and not wants_json():
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    raise InputError(401, "unauthorized", _("Log in as staff, or send a valid token."))


def requires(*permissions: str) -> Callable[[F], F]:
    """Guard a view: staff only, and every one of ``permissions`` (403 otherwise)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_staff() is None:
                return _deny_anonymous()
            missing = [name for name in permissions if not can(name)]
            if missing:
                raise InputError(
                    403,
                    "forbidden",
                    _("Your role does not allow this (%(permission)s).", permission=missing[0]),
                )
            return view(*args, **kwargs)

        wrapper.required_permissions = permissions  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def staff_required(view: F) -> F:
    """Any active staff member (the read-only console)."""
    return requires("console:read")(view)


def request_ip() -> str | None:
    return request.remote_addr


def current_actor() -> audit_log.Actor:
    """The actor of this request for the audit log."""
    staff = current_staff()
    if staff is None and current_user.is_authenticated:
        staff = current_user._get_current_object()
    token = g.get("api_token")
    return audit_log.Actor.of(staff, token.id if token is not None else None, request_ip())


def audit(
    action: str,
    target_type: str | None = None,
    target_ids: Iterable[object] | object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record ``action`` by this request's actor; committed with the change it describes."""
    return audit_log.record(current_actor(), action, target_type, target_ids, details)
