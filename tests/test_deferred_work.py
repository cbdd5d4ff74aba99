"""Account work deferred until the response is out (issue 11 #3) still happens, once, however
the server finishes the response: it reads the whole body but never closes it (werkzeug's
development server when the client has dropped the connection), closes it unread (a HEAD
answer), or does both."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder

from newsletter.extensions import db
from newsletter.models import OneTimeCode, OutboxMessage
from tests.support.accounts import make_user

EMAIL = "member@example.org"


@pytest.fixture
def deferring_app(make_app):
    application = make_app(ACCOUNT_WORK_AFTER_RESPONSE=True)
    make_user(application, EMAIL)
    return application


def ask_reset_code(application):
    environ = EnvironBuilder(
        path="/api/v1/account/password-reset", method="POST", json={"email": EMAIL}
    ).get_environ()
    statuses: list[str] = []
    body = application.wsgi_app(environ, lambda status, headers, *_: statuses.append(status))
    return statuses, body


def codes_and_mail(application) -> tuple[int, int]:
    with application.app_context():
        try:
            return (
                db.session.scalar(select(func.count()).select_from(OneTimeCode)),
                db.session.scalar(select(func.count()).select_from(OutboxMessage)),
            )
        finally:
            db.session.remove()


def test_the_code_is_issued_once_the_body_is_read_even_if_the_response_is_never_closed(
    deferring_app,
):
    statuses, body = ask_reset_code(deferring_app)
    assert codes_and_mail(deferring_app) == (0, 0)  # nothing before the answer is out
    chunks = list(body)  # the server writes everything, then the client is gone: no close()
    assert statuses == ["202 ACCEPTED"]
    assert b"".join(chunks)
    assert codes_and_mail(deferring_app) == (1, 1)


def test_the_code_is_issued_when_the_response_is_closed_unread(deferring_app):
    _statuses, body = ask_reset_code(deferring_app)
    body.close()
    assert codes_and_mail(deferring_app) == (1, 1)


def test_reading_and_closing_issue_one_code_not_two(deferring_app):
    _statuses, body = ask_reset_code(deferring_app)
    list(body)
    body.close()
    assert codes_and_mail(deferring_app) == (1, 1)
