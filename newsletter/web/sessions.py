"""Flask-Login wiring: a session names the user *and* their session version, so changing the
password (which bumps the version) ends every other session."""

from __future__ import annotations

from flask import Flask, redirect, request, url_for
from flask_babel import gettext as _

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


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
    login_manager.unauthorized_handler(unauthorized)
