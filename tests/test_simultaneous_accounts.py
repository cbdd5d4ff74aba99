"""Issue 11, finding 10: two simultaneous registrations (or email changes) for one address
answer like one of them came second, never a 500. Real HTTP, threads, both databases (the
race shows on PostgreSQL, where both requests can insert at once)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from newsletter.delivery.accounts import code_keys
from newsletter.domain import codes
from newsletter.domain.accounts import mark_email_verified, register_account
from newsletter.domain.addresses import normalise_address
from newsletter.extensions import db
from newsletter.models import User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.live import HttpClient, LiveServer


@pytest.fixture
def app_config(app_config):
    app_config["ACCOUNT_RATE_LIMIT"] = "1000/minute"
    return app_config


@pytest.mark.parametrize("round_", range(3))
def test_simultaneous_registrations_for_one_address_never_fail(app, round_):
    address = f"twin{round_}@example.org"
    with LiveServer(app) as server:
        barrier = threading.Barrier(4)

        def register(_):
            http = HttpClient(server.url)
            barrier.wait()
            return http.post(
                "/api/v1/account/register",
                json={"email": address, "password": STRONG_PASSWORD, "language": "en"},
            )

        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(register, range(4)))
    statuses = [response.status for response in responses]
    assert all(status < 500 for status in statuses), [r.text for r in responses]
    assert len({r.body for r in responses}) == 1  # the same answer for all: no enumeration
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id)).where(User.email_key == address)) == 1


@pytest.mark.parametrize("round_", range(3))
def test_simultaneous_email_changes_to_one_address_never_fail(app, round_):
    """Four accounts, each holding a valid code to move to the same free address, confirm at
    once: one moves, the others are told the address cannot be used; no 500, one owner."""
    target = f"wanted{round_}@example.org"
    issued = []
    with app.app_context():
        for n in range(4):
            email = f"changer{round_}-{n}@example.org"
            user = register_account(
                normalise_address(email), STRONG_PASSWORD, language="en", policy="site"
            )
            mark_email_verified(user.user)
            issue = codes.issue_code(
                user.user,
                codes.CHANGE_EMAIL,
                code_keys()[0],
                new_email=target,
                enforce_limits=False,
            )
            issued.append((email, issue.code))
        db.session.commit()
    with LiveServer(app) as server:
        visitors = []
        for email, _code in issued:
            http = HttpClient(server.url)
            answer = http.post("/account/login", json={"email": email, "password": STRONG_PASSWORD})
            assert answer.status == 200, answer.text
            visitors.append(http)
        barrier = threading.Barrier(4)

        def confirm(n):
            barrier.wait()
            return visitors[n].post("/account/email/confirm", json={"code": issued[n][1]})

        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(confirm, range(4)))
    statuses = sorted(response.status for response in responses)
    assert statuses == [200, 400, 400, 400], [r.text for r in responses]
    with app.app_context():
        owners = db.session.scalars(select(User.email).where(User.email_key == target)).all()
        assert owners == [target]
        assert db.session.scalar(select(func.count(User.id))) == 4  # nobody lost an account
