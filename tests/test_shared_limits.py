"""Issue 11, finding 4: per-IP limits are shared by every worker process (Redis), one budget
per capability across its routes, and keyed on the visitor behind trusted proxies."""

from __future__ import annotations

import os
import secrets

import pytest

from tests.support.live import HttpClient
from tests.support.processes import gunicorn

REDIS_URL = os.environ.get("NEWSLETTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/2")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture
def gunicorn_on_redis(app, database_url, smtp_sink, tmp_path):
    """``gunicorn -w 4`` (as the README runs it) with the limits in Redis under a fresh prefix."""
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one)")
    prefix = f"nltest-{secrets.token_hex(6)}"
    try:
        with gunicorn(
            database_url, smtp_sink.port, tmp_path, workers=4,
            env={
                "NEWSLETTER_RATELIMIT_STORAGE_URI": REDIS_URL,
                "NEWSLETTER_RATELIMIT_KEY_PREFIX": prefix,
                "NEWSLETTER_SUBSCRIBE_RATE_LIMIT": "5/minute",
            },
        ) as url:
            yield url
    finally:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)


def test_four_workers_on_redis_give_one_subscribe_budget_across_its_routes(gunicorn_on_redis):
    statuses = []
    for number in range(24):
        # New connection each time: gunicorn hands them to whichever of its 4 workers.
        http = HttpClient(gunicorn_on_redis)
        body = {"email": f"visitor{number}@example.org", "language": "en"}
        path = "/api/v1/subscriptions" if number % 2 else "/subscribe"
        statuses.append(http.post(path, json=body).status)
    print(f"24 subscribes over 2 routes and 4 workers, limit 5/minute: {statuses}")
    assert statuses.count(202) == 5, statuses
    assert statuses.count(429) == 19, statuses


def test_one_budget_for_sending_account_codes_whatever_the_route(app, client):
    app.config["ACCOUNT_RATE_LIMIT"] = "3/minute"
    routes = ["/account/reset", "/api/v1/account/password-reset", "/account/reset/resend"]
    statuses = [
        client.post(route, json={"email": f"r{n}@example.org"}).status_code
        for n in range(2)
        for route in routes
    ]
    assert statuses.count(429) == 3, statuses


@pytest.mark.parametrize("proxies", [0, 1])
def test_limits_key_on_the_visitor_behind_trusted_proxies(make_app, proxies):
    application = make_app(TRUSTED_PROXIES=proxies, SUBSCRIBE_RATE_LIMIT="2/minute")
    from newsletter import register_proxy_fix

    register_proxy_fix(application)
    statuses = {}
    for visitor in ("198.51.100.7", "203.0.113.9"):
        client = application.test_client()
        statuses[visitor] = [
            client.post(
                "/api/v1/subscriptions",
                json={"email": f"{visitor}.{n}@example.org"},
                headers={"X-Forwarded-For": visitor},
                environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the proxy
            ).status_code
            for n in range(3)
        ]
    if proxies:  # each visitor has their own budget
        assert statuses == {v: [202, 202, 429] for v in statuses}
    else:  # the header is not trusted: one budget for the proxy's address
        assert sorted(statuses["198.51.100.7"] + statuses["203.0.113.9"]) == [202, 202] + [429] * 4
