"""Flask-Login wiring: a session names the user *and* their session version, so changing the
password (which bumps the version) ends every other session."""

from __future__ import annotations

from flask import Flask

from ..extensions import db, login_manager
from ..models import User


def load_user(session_id: str) -> User | None:
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
