"""Logging in and out."""

from __future__ import annotations

from flask import redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ...delivery.accounts import send_verification_code
from ...domain.accounts import LoginState, authenticate, find_user
from ...domain.addresses import InvalidAddress, normalise_address
from ...extensions import db, limiter
from ..inputs import InputError, page_or_json
from ..sessions import end_user_sessions, start_session_clock
from .common import (
    _fresh_session,
    _go_to,
    _page,
    _payload,
    _text,
    blueprint,
    failed_login,
    login_rate_limit,
    safe_next,
)

# --- login and logout ---------------------------------------------------------------------


@blueprint.route("/account/login", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"], deduct_when=failed_login)
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return _page("login.html", email="", next_url=next_url, error=None)
    payload = _payload()
    next_url = safe_next(payload.get("next")) or next_url
    email = _text(payload, "email")
    try:
        user = find_user(normalise_address(email))
    except InvalidAddress:
        user = None
    outcome = authenticate(user, payload.get("password"), client=request.remote_addr)
    db.session.commit()  # failure counts, lock, or a refreshed hash
    if outcome.state == LoginState.FAILED or outcome.user is None:
        message = _(
            "The email address or password is incorrect. After several failed attempts, "
            "logging in is paused for a few minutes."
        )
        return page_or_json(
            InputError(401, "invalid_credentials", message),
            lambda: _page("login.html", 401, email=email, next_url=next_url, error=message),
        )
    if outcome.state == LoginState.UNVERIFIED:
        send_verification_code(outcome.user)
        db.session.commit()
        session["verify_email"] = outcome.user.email
        message = _("Verify your address first: enter the code we emailed you.")
        return page_or_json(
            InputError(403, "unverified", message), lambda: _go_to("accounts.verify", message)
        )
    _fresh_session()
    login_user(outcome.user)
    start_session_clock()
    return page_or_json(
        {"status": "ok"}, lambda: redirect(next_url or url_for("accounts.account"), 303)
    )


@blueprint.post("/account/logout")
def logout():
    if current_user.is_authenticated:
        end_user_sessions(current_user._get_current_object())
        db.session.commit()
    logout_user()
    _fresh_session()
    return page_or_json(
        {"status": "logged_out"}, lambda: _go_to("accounts.login", _("You are logged out."))
    )
