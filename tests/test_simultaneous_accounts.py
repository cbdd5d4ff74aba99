"""Issue 11, finding 10: two simultaneous registrations (or email changes) for one address
answer like one of them came second, never a 500. Real HTTP, threads, both databases (the
race shows on PostgreSQL, where both requests can insert at once)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

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
