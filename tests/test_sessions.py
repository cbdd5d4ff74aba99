"""Issue 11, finding 6: logging out ends the session on the server (a saved cookie is dead),
and sessions have an idle and an absolute lifetime. Through real HTTP."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(
    ("setting", "seconds"), [("SESSION_IDLE_SECONDS", 1), ("SESSION_ABSOLUTE_SECONDS", 2)]
)
def test_sessions_end_after_their_idle_and_absolute_lifetimes(app, setting, seconds):
    import time

    make_user(app, EMAIL)
    app.config[setting] = seconds
    with LiveServer(app) as server:
        http = logged_in(server)
        deadline = time.monotonic() + seconds + 1.5
        while time.monotonic() < deadline:  # keeps the session busy (not idle) when absolute
            time.sleep(0.5 if setting == "SESSION_ABSOLUTE_SECONDS" else seconds + 0.6)
            if setting == "SESSION_ABSOLUTE_SECONDS" and time.monotonic() < deadline - 1.2:
                assert http.get("/account").status == 200
        assert http.get("/account").status in (302, 303)
