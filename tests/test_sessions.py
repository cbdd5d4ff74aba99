"""Issue 11, finding 6: logging out ends the session on the server (a saved cookie is dead),
and sessions have an idle and an absolute lifetime. Through real HTTP."""

from __future__ import annotations

import time

from tests.support.accounts import STRONG_PASSWORD, make_user
from tests.support.live import HttpClient, LiveServer

EMAIL = "reader@example.org"


def logged_in(server) -> HttpClient:
    http = HttpClient(server.url)
    response = http.post("/account/login", json={"email": EMAIL, "password": STRONG_PASSWORD})
    assert response.status == 200, response.text
    assert http.get("/account", headers={"Accept": "application/json"}).status == 200
    return http


def test_a_cookie_saved_before_logout_is_dead_after_it(app):
    make_user(app, EMAIL)
    with LiveServer(app) as server:
        http = logged_in(server)
        saved = dict(http.cookies)
        assert http.post("/account/logout", json={}).status == 200
        thief = HttpClient(server.url, cookies=saved)
        page = thief.get("/account")
        assert page.status in (302, 303), page.status
        assert "/account/login" in page.headers["Location"]


def test_sessions_end_after_their_idle_lifetime(app):
    make_user(app, EMAIL)
    app.config["SESSION_IDLE_SECONDS"] = 1
    with LiveServer(app) as server:
        http = logged_in(server)
        # Session clocks count whole seconds: 2.2 s idle is past 1 s whatever the rounding.
        time.sleep(2.2)
        assert http.get("/account").status in (302, 303)


def test_sessions_end_after_their_absolute_lifetime_however_busy(app):
    make_user(app, EMAIL)
    app.config["SESSION_ABSOLUTE_SECONDS"] = 3
    with LiveServer(app) as server:
        before_login = time.monotonic()
        http = logged_in(server)
        after_login = time.monotonic()
        # In use every 0.4 s (never idle): alive for the whole lifetime. The clocks count whole
        # seconds, so it is surely alive while under 3 s have passed since before the login,
        # and surely ended once over 4 s have passed since after it.
        while time.monotonic() - before_login < 2.8:
            assert http.get("/account").status == 200
            time.sleep(0.4)
        time.sleep(max(0.0, after_login + 4.2 - time.monotonic()))
        assert http.get("/account").status in (302, 303)
