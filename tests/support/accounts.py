"""Helpers for account tests: accounts made through the domain, forms posted with their CSRF
token the way a browser would, codes and links read from what arrived over SMTP."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.domain.accounts import create_staff, find_user
from newsletter.domain.addresses import normalise_address
from newsletter.domain.passwords import hash_password
from newsletter.extensions import db
from newsletter.models import OneTimeCode, User, utcnow
from tests.support.mailbox import ReceivedMessage

# Meets the site policy (12+ chars, upper, lower, digit, symbol, no spaces) and is not common.
STRONG_PASSWORD = "Correct-Horse-42-Battery"
OTHER_STRONG_PASSWORD = "Purple#Giraffe-Mountain-97"

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
CODE_RE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


def csrf_token(client: FlaskClient, page: str) -> str:
    """The CSRF token a browser would find in the form on ``page``."""
    response = client.get(page)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {page} ({response.status_code})"
    return match.group(1)


def post_form(client: FlaskClient, page: str, action: str, data: dict, **kwargs):
    """GET ``page`` for its CSRF token, then POST ``data`` as a form to ``action``."""
    return client.post(action, data={**data, "csrf_token": csrf_token(client, page)}, **kwargs)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def code_in(message: ReceivedMessage) -> str:
    """The 6-digit code of a code email (on a line of its own in the plain text)."""
    match = CODE_RE.search(message.text)
    assert match, message.text
    return match.group(1)


def make_user(
    app: Flask,
    email: str,
    password: str = STRONG_PASSWORD,
    *,
    verified: bool = True,
    staff: bool = False,
    language: str = "en",
) -> int:
    """An account made directly in the database; returns its id."""
    with app.app_context():
        if staff:
            user = create_staff(email, password, language=language)
        else:
            address = normalise_address(email)
            user = User(
                email=address.email,
                email_key=address.key,
                password_hash=hash_password(password),
                language=language,
                is_staff=False,
                email_verified_at=utcnow() if verified else None,
                session_version=1,
                failed_logins=0,
            )
            db.session.add(user)
        db.session.commit()
        return user.id


def user_by_email(email: str) -> User | None:
    return find_user(normalise_address(email))


def codes_of(user_id: int, purpose: str) -> list[OneTimeCode]:
    return list(
        db.session.scalars(
            select(OneTimeCode)
            .where(OneTimeCode.user_id == user_id, OneTimeCode.purpose == purpose)
            .order_by(OneTimeCode.id)
        )
    )


def age_codes(app: Flask, user_id: int, purpose: str, seconds: int) -> None:
    """Move a user's codes back in time (instead of sleeping through cooldowns and expiries)."""
    from datetime import timedelta

    with app.app_context():
        for row in codes_of(user_id, purpose):
            row.created_at -= timedelta(seconds=seconds)
            row.expires_at -= timedelta(seconds=seconds)
        db.session.commit()


def login(client: FlaskClient, email: str, password: str, next_url: str | None = None):
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return post_form(client, "/account/login", "/account/login", data)


def speak_english(client: FlaskClient) -> None:
    """Choose English for this visitor (pages default to French), as the language links do."""
    client.get("/account/login?lang=en")
