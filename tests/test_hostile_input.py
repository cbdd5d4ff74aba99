"""No request, however malformed, gets a 500.

Three layers:
- a sweep over every rule of the url_map (public pages, accounts, console, staff API) as four
  kinds of caller (anonymous, a reader's session, a staff session, a staff bearer token), with
  hostile path values, query strings and bodies (``tests/support/hostile.py``), CSRF checked,
  checked with the page's token, and off: never a 500, a 4xx to JSON has the contract's error
  shape, and a 4xx leaves every table as it was;
- schemathesis generating valid and invalid requests from the app's own ``/api/openapi.json``,
  which must itself be valid OpenAPI 3 and describe every ``/api/v1`` route;
- one test per 500 the sweep found, written before its fix.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import schemathesis
from argon2 import PasswordHasher, Type
from flask import Flask
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from newsletter.delivery.signing import app_signer
from newsletter.domain import passwords
from newsletter.domain.accounts import create_staff
from newsletter.domain.api_tokens import issue_api_token
from newsletter.domain.digests import create_digest
from newsletter.domain.releases import create_release
from newsletter.domain.schedules import create_schedule
from newsletter.domain.subscriptions import preferences_token, unsubscribe_token
from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    Release,
    Subscriber,
    User,
    utcnow,
)
from newsletter.web.openapi import OPENAPI
from tests.support.accounts import STRONG_PASSWORD, make_user, post_form
from tests.support.digests import add_release, add_subscribers, staff_token
from tests.support.hostile import (
    HOSTILE_HEADERS,
    Caller,
    Sweep,
    contract_error_problem,
    error_shape_problem,
    form_bodies,
    json_bodies,
    query_strings,
    row_counts,
    targets,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# ---------------------------------------------------------------------------------------------
# The sweep

# (WTF_CSRF_ENABLED, requests carry the session's CSRF token)
CSRF_MODES = {
    "csrf-on": (True, False),  # what a forged cross-site post meets: refusals are swept
    "csrf-on-with-token": (True, True),  # what a page of the site sends: bodies reach views
    "csrf-off": (False, False),  # what most tests run with: views without the global check
}
CALLERS = ["anonymous", "reader", "staff-session", "staff-token"]
# Enough bodies to walk the CSRF refusal path of every write route.
REFUSAL_BODIES = {"no body", "form: empty", "json: malformed", "json: empty object", "text/plain"}


@pytest.fixture
def cheap_password_hashes(monkeypatch):
    """argon2 at production cost is ~0.15 s a check and hostile logins make hundreds: the
    sweep checks answers, not hashing (tests/test_passwords.py covers that)."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)
    monkeypatch.setattr(passwords, "_HASHER", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("dummy"))


@pytest.fixture
def world(request, app_config, cheap_password_hashes):
    """The app in the test's CSRF mode, a staff member (session and token), a reader, and one
    row of each kind for path parameters to point at."""
    callspec = getattr(request.node, "callspec", None)
    mode = callspec.params.get("mode", "csrf-on") if callspec else "csrf-on"
    csrf_enabled, with_token = CSRF_MODES[mode]
    app_config["WTF_CSRF_ENABLED"] = csrf_enabled
    # A 429 would hide what the view does with the body: limits high enough never to trip.
    for name in ("SUBSCRIBE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "ACCOUNT_RATE_LIMIT"):
        app_config[name] = "1000000/minute"
    app = request.getfixturevalue("app")
    make_user(app, "reader@example.org")
    with app.app_context():
        staff = create_staff("editor@example.org", STRONG_PASSWORD, language="en")
        token = issue_api_token(staff)
        reader = db.session.scalar(select(User).where(User.email_key == "reader@example.org"))
        release = create_release({"title": "Première", "language": "fr", "body": "<p>x</p>"})
        digest = create_digest({"language": "fr", "send_at": (utcnow() + timedelta(days=3))})
        schedule = create_schedule({"language": "fr", "every": "day", "at": "08:00"})
        add_subscribers(1, language="fr")
        subscriber = db.session.scalar(select(Subscriber))
        db.session.add(
            Delivery(digest_id=digest.id, subscriber_id=subscriber.id, status=DeliveryStatus.SENT)
        )
        db.session.commit()
        signer = app_signer()
        ordinary = {
            "release_id": str(release.id),
            "digest_id": str(digest.id),
            "schedule_id": str(schedule.id),
            "subscriber_id": str(subscriber.id),
            "filename": "site.css",
            "public.preferences/token": preferences_token(signer, subscriber),
            "public.unsubscribe/token": unsubscribe_token(
                signer, subscriber.id, subscriber.email_key
            ),
        }
        callers = {
            "anonymous": Caller("anonymous"),
            "reader": Caller("reader", user_session=reader.get_id()),
            "staff-session": Caller("staff-session", user_session=staff.get_id()),
            "staff-token": Caller("staff-token", token=token),
        }
    return World(app, ordinary, callers, with_token)


@dataclass
class World:
    app: Flask
    ordinary: dict[str, str]
    callers: dict[str, Caller]
    with_csrf_token: bool

    def sweep(self, caller_name: str) -> Sweep:
        return Sweep(
            app=self.app,
            client=self.app.test_client(),
            caller=self.callers[caller_name],
            with_csrf_token=self.with_csrf_token,
        )


def assert_clean(sweep: Sweep, caplog: pytest.LogCaptureFixture) -> None:
    assert not sweep.findings, f"{len(sweep.findings)} of {sweep.sent}:\n{sweep.report()}"
    unhandled = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert not unhandled, unhandled[0].exc_text


@pytest.mark.slow
@pytest.mark.parametrize("caller_name", CALLERS)
def test_no_path_value_or_query_string_gets_a_500(world, caller_name, caplog):
    """Every rule and method: ordinary and hostile path values, hostile headers and query
    strings."""
    sweep = world.sweep(caller_name)
    with caplog.at_level(logging.ERROR):
        for target in targets(world.app, world.ordinary):
            for method in target.methods:
                for url in target.ordinary_urls():
                    sweep.send(method, url, "no body", {})
                if method in ("HEAD", "OPTIONS"):
                    continue
                for url in target.hostile_urls():
                    sweep.send(method, url, "hostile path", {})
                for label, headers in HOSTILE_HEADERS.items():
                    sweep.send(method, next(target.ordinary_urls()), label, {"headers": headers})
                if method == "GET":
                    url = next(target.ordinary_urls())
                    for query in query_strings():
                        sweep.send(method, url + query, "hostile query", {})
    assert_clean(sweep, caplog)
    assert sweep.sent > 1000


@pytest.mark.slow
@pytest.mark.parametrize("caller_name", CALLERS)
@pytest.mark.parametrize("mode", list(CSRF_MODES))
def test_no_body_gets_a_500(world, mode, caller_name, caplog, is_postgres):
    """Every write route and method, every hostile body (a few when CSRF refuses them all)."""
    if is_postgres and mode != "csrf-off":
        # The CSRF modes differ only in the web layer, which SQLite's run covers; on
        # PostgreSQL the sweep keeps the mode that lets every body reach the database.
        pytest.skip("CSRF variants run on SQLite; PostgreSQL runs csrf-off")
    bodies = [*json_bodies(), *form_bodies()]
    if mode == "csrf-on":
        bodies = [(label, kwargs) for label, kwargs in bodies if label in REFUSAL_BODIES]
    sweep = world.sweep(caller_name)
    with caplog.at_level(logging.ERROR):
        for target in targets(world.app, world.ordinary):
            for method in sorted(set(target.methods) & WRITE_METHODS):
                url = next(target.ordinary_urls())
                for label, kwargs in bodies:
                    sweep.send(method, url, label, kwargs)
    assert_clean(sweep, caplog)
    assert sweep.sent > 30 * len(bodies)


def test_the_sweep_reaches_every_route(world):
    """Guard for the sweep itself: it builds a URL for every rule, and the rows it aims at exist."""
    app, ordinary = world.app, world.ordinary
    rules = list(app.url_map.iter_rules())
    built = targets(app, ordinary)
    assert len(built) == len(rules)
    for prefix in ("/api/v1/", "/admin/", "/account/", "/subscribe", "/unsubscribe/"):
        assert any(t.rule.rule.startswith(prefix) for t in built), prefix
    client = app.test_client()
    with app.app_context():
        token = db.session.scalar(select(User.id).where(User.is_staff))
    assert token is not None
    staff = world.callers["staff-token"]
    headers = staff.headers(app, csrf=False)
    assert (
        client.get(f"/api/v1/digests/{ordinary['digest_id']}", headers=headers).status_code == 200
    )
    assert (
        client.get(f"/api/v1/releases/{ordinary['release_id']}", headers=headers).status_code == 200
    )
    preferences = client.get(f"/preferences/{ordinary['public.preferences/token']}")
    assert preferences.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 1
        assert db.session.scalar(select(func.count(Digest.id))) == 1


def test_the_error_shape_check_catches_a_bad_shape(app, client):
    """The sweep's contract check is not vacuous: it rejects a body that is not the shape."""
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert contract_error_problem(response) is None
    page = client.get("/nothing-here")
    assert contract_error_problem(page) is not None


# ---------------------------------------------------------------------------------------------
# The OpenAPI description, and requests generated from it

MAX_EXAMPLES = 25  # per operation and generation mode: the whole run stays under a minute
OPERATIONS = sorted((path, method) for path, item in OPENAPI["paths"].items() for method in item)


def api_v1_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every /api/v1 rule of the url_map."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_the_served_openapi_document_is_valid_and_describes_every_api_v1_route(app, client):
    with app.app_context():
        headers = {"Authorization": f"Bearer {staff_token()}"}
    response = client.get("/api/openapi.json", headers=headers)
    assert response.status_code == 200
    spec = response.get_json()
    validate_openapi(spec)  # raises on anything that is not valid OpenAPI 3.0
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    # Both ways: no route left undescribed, no description of a route that is gone.
    assert described == api_v1_routes(app)


def fuzz(strategy, checks: list, headers: dict[str, str]) -> None:
    """Send every generated case; fail on a broken check or a 4xx not in the error shape."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: CI never flakes on a new one
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks)
        if 400 <= response.status_code < 500:
            problem = error_shape_problem(response.json())
            assert problem is None, f"{case.method} {case.formatted_path}: {problem}"

    send()


@pytest.fixture
def fuzzed(app_config, cheap_password_hashes, request):
    """The app with limits out of the way, a staff token, and one row of each kind."""
    for name in ("SUBSCRIBE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "ACCOUNT_RATE_LIMIT"):
        app_config[name] = "1000000/minute"
    app = request.getfixturevalue("app")
    with app.app_context():
        headers = {"Authorization": f"Bearer {staff_token()}"}
        rows = {
            "release_id": create_release({"title": "Première", "language": "fr"}).id,
            "digest_id": create_digest(
                {"language": "fr", "send_at": utcnow() + timedelta(days=3)}
            ).id,
            "schedule_id": create_schedule({"language": "fr", "every": "day", "at": "08:00"}).id,
        }
        db.session.commit()
    return app, headers, rows


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_generated_requests_get_no_500_and_answers_match_the_description(fuzzed, path, method):
    """Valid requests (random ids, and the real row's id) get documented answers of the
    documented shape; invalid ones get no 500 and, as a 4xx, the contract's error shape."""
    app, headers, rows = fuzzed
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=headers)
    operation = schema[path][method.upper()]
    conformance = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    real_ids = {name: value for name, value in rows.items() if "{" + name + "}" in path}
    runs = [
        (operation.as_strategy(GenerationMode.POSITIVE), conformance),
        (operation.as_strategy(GenerationMode.NEGATIVE), [not_a_server_error]),
    ]
    if real_ids:
        strategy = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real_ids)
        runs.append((strategy, conformance))
    for strategy, checks in runs:
        fuzz(strategy, checks, headers)


def test_the_fuzzing_checks_can_fail(app):
    """Guard for the run above: an answer the description does not list is caught."""
    spec = copy.deepcopy(OPENAPI)
    del spec["paths"]["/api/v1/account/password-reset"]["post"]["responses"]["202"]
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = app
    operation = schema["/api/v1/account/password-reset"]["POST"]
    strategy = operation.as_strategy(GenerationMode.POSITIVE)
    with pytest.raises(FailureGroup) as failed:
        fuzz(strategy, [status_code_conformance], {})
    assert any(isinstance(exc, UndefinedStatusCode) for exc in failed.value.exceptions)


# ---------------------------------------------------------------------------------------------
# What the sweep found, one test per 500 (each written before its fix)


@pytest.fixture
def token(app) -> str:
    with app.app_context():
        return staff_token()


@pytest.fixture
def bearer(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def json_error(response) -> dict:
    assert contract_error_problem(response) is None, response.get_data()[:300]
    return response.get_json()["error"]


# ---------------------------------------------------------------------------------------------
# JSON that parses into something no view can use

def assert_malformed_json_writes_nothing(app, client, path: str, body: str, headers) -> None:
    """POSTing ``body`` to ``path`` is a 400 ``malformed_json`` and no table gains a row."""
    with app.app_context():
        before = row_counts()
    response = client.post(path, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert json_error(response)["code"] == "malformed_json"
    with app.app_context():
        assert row_counts() == before


DEEP_JSON = "[" * 100_000 + "]" * 100_000  # 200 kB: under the size limit, over the recursion one


@pytest.mark.parametrize(
    "path",
    [
        "/subscribe",
        "/api/v1/subscriptions",
        "/account/login",
        "/account/register",
        "/api/v1/account/password-reset",
        "/api/v1/account/password-reset/confirm",
        "/api/v1/releases",
        "/api/v1/digests",
        "/api/v1/schedules",
    ],
)
def test_deeply_nested_json_is_a_400(app, client, bearer, path):
    assert_malformed_json_writes_nothing(app, client, path, DEEP_JSON, bearer)


def test_deeply_nested_json_on_a_preferences_link_is_a_400(app, client):
    with app.app_context():
        add_subscribers(1, language="fr")
        subscriber = db.session.scalar(select(Subscriber))
        token = preferences_token(app_signer(), subscriber)
    response = client.post(f"/preferences/{token}", data=DEEP_JSON, content_type="application/json")
    assert response.status_code == 400
    assert json_error(response)["code"] == "malformed_json"


def with_lone_surrogate(template: str) -> str:
    """A JSON body where ``?`` is ``"\\ud800x"``: valid JSON, but not text that any database,
    hash or email can encode."""
    return template.replace("?", '"\\ud800x"')


def test_a_lone_surrogate_in_a_password_is_refused_not_hashed(app, client):
    make_user(app, "reader@example.org")
    body = with_lone_surrogate('{"email": "reader@example.org", "password": ?}')
    response = client.post("/account/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert json_error(response)["code"] == "malformed_json"
    # The account still works with its real password.
    ok = client.post(
        "/account/login", json={"email": "reader@example.org", "password": STRONG_PASSWORD}
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/releases", with_lone_surrogate('{"title": ?, "language": "fr"}')),
        ("/api/v1/subscriptions", with_lone_surrogate('{"email": "a@example.org", "name": ?}')),
        ("/api/v1/digests", with_lone_surrogate('{"language": "fr", "subject": ?}')),
        ("/api/v1/account/register", with_lone_surrogate('{"email": ?, "password": "x"}')),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_json_body_is_a_400(app, client, bearer, path, body):
    assert_malformed_json_writes_nothing(app, client, path, body, bearer)


def test_a_lone_surrogate_in_a_key_or_a_nested_value_is_a_400(client):
    for body in ('{"\\udfff": 1}', '{"email": ["a", {"b": "\\udc80"}]}'):
        response = client.post("/api/v1/subscriptions", data=body, content_type="application/json")
        assert response.status_code == 400, body


# ---------------------------------------------------------------------------------------------
# Dates at the edge of the calendar

# Valid ISO 8601, but converting them to UTC leaves year 1..9999: OverflowError, not ValueError.
EDGE_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("value", EDGE_DATES)
def test_a_send_at_beyond_the_calendar_is_a_422(app, client, bearer, value):
    response = client.post(
        "/api/v1/digests", json={"language": "fr", "send_at": value}, headers=bearer
    )
    assert response.status_code == 422
    assert "send_at" in json_error(response)["fields"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Digest.id))) == 0


@pytest.mark.parametrize("value", EDGE_DATES)
def test_a_published_at_beyond_the_calendar_is_a_422(app, client, bearer, value):
    response = client.post(
        "/api/v1/releases",
        json={"title": "T", "language": "fr", "published_at": value},
        headers=bearer,
    )
    assert response.status_code == 422
    assert "published_at" in json_error(response)["fields"]
    with app.app_context():
        release = add_release(title="Kept")
        release_id = release.id
    patched = client.patch(
        f"/api/v1/releases/{release_id}", json={"published_at": value}, headers=bearer
    )
    assert patched.status_code == 422
    assert "published_at" in json_error(patched)["fields"]
    with app.app_context():
        assert db.session.scalars(select(Release.title)).all() == ["Kept"]
        assert db.session.get(Release, release_id).published_at.year not in (1, 9999)


def staff_session(app, client) -> None:
    """Log a staff member into ``client`` the way Flask-Login does (with a CSRF token)."""
    make_user(app, "editor@example.org", staff=True)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email_key == "editor@example.org"))
        Caller("staff", user_session=user.get_id()).prepare(app, client)


@pytest.mark.parametrize("value", EDGE_DATES)
def test_an_imported_consent_time_beyond_the_calendar_is_a_rejected_row(app, client, value):
    staff_session(app, client)
    csv_text = f"email,consent_at\nedge@example.org,{value}\nfine@example.org,\n"
    page = "/admin/subscribers/import"
    preview = post_form(client, page, page, {"csv_text": csv_text, "default_language": "fr"})
    assert preview.status_code == 200
    assert "consent_at" in preview.get_data(as_text=True)
    done = post_form(
        client, page, page, {"csv_text": csv_text, "default_language": "fr", "step": "import"}
    )
    assert done.status_code == 200
    with app.app_context():
        assert db.session.scalars(select(Subscriber.email)).all() == ["fine@example.org"]


# ---------------------------------------------------------------------------------------------
# Account links posted with a JSON body answer in JSON


@pytest.mark.parametrize("path", ["/account/verify/forged.token", "/account/email/confirm/x"])
def test_a_bad_account_link_posted_as_json_gets_the_json_error(client, path):
    response = client.post(path, json={})
    assert response.status_code == 400
    assert json_error(response)["code"] == "invalid_link"
    page = client.get(path)
    assert page.status_code == 400
    assert page.mimetype == "text/html"


# ---------------------------------------------------------------------------------------------
# The console takes forms; a JSON body there gets the contract's JSON error, never a page


@pytest.mark.parametrize(
    "path",
    [
        "/admin/digests",
        "/admin/digests/schedules",
        "/admin/releases/new",
        "/admin/releases/import",
        "/admin/subscribers/import",
    ],
)
def test_a_json_body_posted_to_the_console_gets_a_json_error(app, client, path):
    staff_session(app, client)
    csrf = Caller("staff").headers(app, csrf=True)  # the token a console page carries
    with app.app_context():
        before = row_counts()
    response = client.post(path, json={"language": "fr", "title": "T"}, headers=csrf)
    assert response.status_code == 415
    assert json_error(response)["code"] == "unsupported_media_type"
    with app.app_context():
        assert row_counts() == before


# ---------------------------------------------------------------------------------------------
# What schemathesis found


def test_a_reset_request_for_an_impossible_address_is_a_documented_422(client):
    """Found by schemathesis: 422 for an address email-validator refuses was undocumented."""
    response = client.post("/api/v1/account/password-reset", json={"email": "a@5.jcyv6.test"})
    assert response.status_code == 422
    assert "email" in json_error(response)["fields"]
    documented = OPENAPI["paths"]["/api/v1/account/password-reset"]["post"]["responses"]
    assert "422" in documented


@pytest.mark.parametrize("path", ["/admin/subscribers", "/admin/subscribers/export.csv"])
@pytest.mark.parametrize("query", ["%00", "a%00b", "x%0d%0ay", "%7f"])
def test_a_control_character_in_the_subscriber_search_is_a_400(app, client, bearer, path, query):
    """Found by the sweep on PostgreSQL, which refuses NUL in a query parameter (a 500)."""
    with app.app_context():
        add_subscribers(2, language="fr")
    response = client.get(f"{path}?q={query}", headers=bearer)
    assert response.status_code == 400
    assert "q" in response.get_data(as_text=True)
    found = client.get(f"{path}?q=confirmed-fr-1", headers=bearer)
    assert found.status_code == 200
    assert "confirmed-fr-1@example.org" in found.get_data(as_text=True)
