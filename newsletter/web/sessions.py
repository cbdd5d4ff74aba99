"""Flask-Login wiring: a session names the user *and* their session version, so changing the
password (which bumps the version) ends every other session."""

from __future__ import annotations

import time

from flask import Flask, current_app, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import logout_user

from ..extensions import db, login_manager
from ..models import User
from .inputs import InputError, wants_json


def load_user(session_id: str) -> User | None:
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def unauthorized():
    """Pages send people to the login page (and back); JSON clients get a 401."""
    if wants_json():
        raise InputError(401, "unauthorized", _("Please log in."))
    return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))


# Session keys: when the login happened and when the session was last used (Unix seconds).
LOGIN_AT = "login_at"
SEEN_AT = "seen_at"


def start_session_clock() -> None:
    """Call at login: the session's absolute and idle lifetimes start now."""
    now = int(time.time())
    session[LOGIN_AT] = now
    session[SEEN_AT] = now
    session.permanent = True  # the cookie expires with the absolute lifetime


def end_user_sessions(user: User) -> None:
    """Logout ends the session on the server: every cookie naming the old version is dead
    (the session version is also what a password change bumps). The caller commits."""
    user.session_version = (user.session_version or 1) + 1


def enforce_session_lifetimes() -> None:
    """Log out a session past its idle or absolute lifetime.

    A session signed before the clocks existed gets them at its first request (logout and
    password changes end such sessions through the version anyway).
    """
    if not session.get("_user_id"):
        return
    now = int(time.time())
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        start_session_clock()
        return
    config = current_app.config
    if (
        now - login_at > config["SESSION_ABSOLUTE_SECONDS"]
        or now - seen_at > config["SESSION_IDLE_SECONDS"]
    ):
        logout_user()
        session.pop(LOGIN_AT, None)
        session.pop(SEEN_AT, None)
        return
    if now != seen_at:
        session[SEEN_AT] = now


def init_login(app: Flask) -> None:
    app.before_request(enforce_session_lifetimes)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
    login_manager.unauthorized_handler(unauthorized)
