"""Who may call staff routes: a staff session in the browser, or ``Authorization: Bearer``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..domain.api_tokens import user_for_api_token
from ..extensions import db
from ..models import User
from .inputs import InputError, wants_json

F = TypeVar("F", bound=Callable[..., Any])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_staff() -> User | None:
    """The staff member making this request, by token or by session."""
    token = bearer_token()
    if token is not None:
        user = user_for_api_token(token)
        if user is not None:
            db.session.commit()  # records last_used_at
        return user
    if current_user.is_authenticated and current_user.is_staff:
        return current_user._get_current_object()
    return None


def staff_required(view: F) -> F:
    """401 for no credentials (login page for browsers), 403 for a non-staff account."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        staff = current_staff()
        if staff is None:
            if bearer_token() is None and current_user.is_authenticated:
                raise InputError(403, "forbidden", _("This area is for staff only."))
            if bearer_token() is None and not wants_json():
                return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
            raise InputError(401, "unauthorized", _("Log in as staff, or send a valid token."))
        g.staff = staff
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
