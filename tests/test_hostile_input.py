"""No request, however malformed, gets a 500.

Every hostile input the sweep (``tests/support/hostile.py``) turned into a 500 has a test of
its own here, written before its fix.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.delivery.signing import app_signer
from newsletter.domain.subscriptions import preferences_token
from newsletter.extensions import db
from newsletter.models import Digest, Release, Subscriber, User
from tests.support.accounts import STRONG_PASSWORD, make_user, post_form
from tests.support.digests import add_release, add_subscribers, staff_token
from tests.support.hostile import Caller, contract_error_problem, row_counts


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
    with app.app_context():
        before = row_counts()
    response = client.post(path, data=DEEP_JSON, content_type="application/json", headers=bearer)
    assert response.status_code == 400
    assert json_error(response)["code"] == "malformed_json"
    with app.app_context():
        assert row_counts() == before


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
    with app.app_context():
        before = row_counts()
    response = client.post(path, data=body, content_type="application/json", headers=bearer)
    assert response.status_code == 400
    assert json_error(response)["code"] == "malformed_json"
    with app.app_context():
        assert row_counts() == before


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
