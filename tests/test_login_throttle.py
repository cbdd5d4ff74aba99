"""Issue 11, finding 2: wrong passwords are throttled per (account, client) and per account,
never locking the owner out; the count is atomic. Through real HTTP, from two loopback
addresses (an attacker on 127.0.0.2, the owner on 127.0.0.1)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from newsletter.domain import accounts as accounts_domain
from tests.support.accounts import STRONG_PASSWORD, make_user
from tests.support.live import HttpClient, LiveServer

EMAIL = "owner@example.org"


@pytest.fixture
def app_config(app_config):
    # The per-IP request limit would answer 429 before the throttle is reached: this tests
    # the throttle itself (the limit has its own tests).
    app_config["LOGIN_RATE_LIMIT"] = "10000/minute"
    return app_config


def json_login(http: HttpClient, password: str, email: str = EMAIL):
    return http.post("/account/login", json={"email": email, "password": password})


def test_a_stranger_failing_fifty_times_does_not_stop_the_owner(app):
    make_user(app, EMAIL)
    with LiveServer(app) as server:
        attacker = HttpClient(server.url, source="127.0.0.2")
        statuses = [json_login(attacker, f"Wrong-Password-{n}!").status for n in range(50)]
        assert set(statuses) == {401}
        # The attacker, having failed, is held back even with the right password...
        assert json_login(attacker, STRONG_PASSWORD).status == 401
        # ...but the owner, from an address that has not been failing, logs in at once.
        owner = HttpClient(server.url, source="127.0.0.1")
        response = json_login(owner, STRONG_PASSWORD)
        assert response.status == 200, response.text
        assert response.json() == {"status": "ok"}
        assert owner.get("/account").status == 200


def test_simultaneous_wrong_logins_check_at_most_the_free_number(app, monkeypatch):
    make_user(app, EMAIL)
    checked = []
    lock = threading.Lock()
    real_verify = accounts_domain.verify_password

    def counting_verify(stored_hash, password):  # a spy: the real check still runs
        if stored_hash is not None:
            with lock:
                checked.append(password)
        return real_verify(stored_hash, password)

    monkeypatch.setattr(accounts_domain, "verify_password", counting_verify)
    with LiveServer(app) as server:
        attacker = HttpClient(server.url, source="127.0.0.2")
        barrier = threading.Barrier(12)

        def guess(number: int) -> int:
            barrier.wait()
            return json_login(HttpClient(server.url, source="127.0.0.2"), f"Guess-{number}!").status

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(guess, range(12)))
        assert statuses == [401] * 12
        print(f"12 simultaneous wrong logins: {len(checked)} passwords checked")
        assert len(checked) <= 5  # LOGIN_FREE_FAILURES_PER_CLIENT (and the old lock's count)
        del attacker
