"""The step-up check of two-factor login, apart from its pages so any view may use it
(``web.two_factor`` holds the pages and the login gate)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _

from ..domain import two_factor
from .accounts import safe_next
from .inputs import InputError, wants_json

F = TypeVar("F", bound=Callable[..., Any])

PENDING = "staff_2fa_pending"  # password accepted, code not given yet
ENROL = "staff_2fa_enrol"  # the policy requires enrolling before anything else
PASSED_AT = "staff_2fa_at"  # time.time() of the last good code, for step-up


def step_up_response() -> Any:
    """The answer that asks for a fresh code, or None when none is needed.

    Only console sessions of staff who use TOTP are asked (a whole-list send or an export
    after ``STAFF_STEP_UP_SECONDS`` without a code). An API token has no second factor to ask
    for: its guard is its scope (``digests:send``, ``subscribers:export``), its expiry and its
    revocation, checked by ``requires``."""
    staff = g.get("staff")
    if (
        staff is None
        or g.get("api_token") is not None
        or not two_factor.is_enrolled(staff)
        or time.time() - float(session.get(PASSED_AT, 0))
        <= current_app.config["STAFF_STEP_UP_SECONDS"]
    ):
        return None
    if wants_json():
        raise InputError(401, "step_up_required", _("Enter a fresh two-factor code first."))
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    back = back or safe_next(request.referrer and _path_of(request.referrer))
    flash(_("For this, enter a fresh two-factor code."), "ok")
    return redirect(url_for("two_factor.verify", next=back, step_up=1), 303)


def step_up(view: F) -> F:
    """Ask a session that uses TOTP for a fresh code before an export or a whole-list send."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        asked = step_up_response()
        if asked is not None:
            return asked
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
