"""Staff JSON API: authentication, subscribers, releases, digests, schedules, OpenAPI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestSchedule,
    DigestStatus,
    Release,
    ScheduleStatus,
    User,
    utcnow,
)
from tests.support.digests import add_release, add_subscribers, digest_row, staff_token


@pytest.fixture
def token(app) -> str:
    with app.app_context():
        return staff_token()


@pytest.fixture
def api(client, token):
    """Calls with the staff bearer token."""

    class Api:
        def __init__(self) -> None:
            self.headers = {"Authorization": f"Bearer {token}"}

        def get(self, path, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

        def post(self, path, **kwargs):
            return client.post(path, headers=self.headers, **kwargs)

        def patch(self, path, **kwargs):
            return client.patch(path, headers=self.headers, **kwargs)

        def delete(self, path, **kwargs):
            return client.delete(path, headers=self.headers, **kwargs)

    return Api()


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def assert_refused_with_the_field(app, response, model, field: str) -> None:
    """A 422 naming ``field``, and no row of ``model`` stored."""
    assert response.status_code == 422
    assert field in error_of(response)["fields"]
    with app.app_context():
        assert db.session.scalar(select(func.count(model.id))) == 0


# ---------------------------------------------------------------------------------------------
# Who may call


STAFF_ROUTES = [
    ("get", "/api/v1/subscribers"),
    ("get", "/api/v1/releases"),
    ("post", "/api/v1/releases"),
    ("get", "/api/v1/digests"),
    ("post", "/api/v1/digests"),
    ("get", "/api/v1/digests/1"),
    ("post", "/api/v1/digests/1/pause"),
    ("get", "/api/v1/digests/1/deliveries"),
    ("get", "/api/v1/schedules"),
    ("post", "/api/v1/schedules"),
    ("delete", "/api/v1/schedules/1"),
    ("get", "/api/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), STAFF_ROUTES)
def test_staff_routes_refuse_anonymous_callers(client, method, path):
    response = getattr(client, method)(path, json={})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), STAFF_ROUTES)
def test_staff_routes_refuse_bad_and_revoked_tokens(app, client, method, path):
    with app.app_context():
        token = staff_token("gone@example.org")
        from newsletter.domain.api_tokens import revoke_api_tokens

        user = db.session.scalar(select(User).where(User.email_key == "gone@example.org"))
        revoke_api_tokens(user)
        db.session.commit()
    for header in (f"Bearer {token}", "Bearer nlt_forged", "Bearer " + "x" * 5000):
        response = getattr(client, method)(path, json={}, headers={"Authorization": header})
        assert response.status_code == 401, header


def test_a_token_of_a_non_staff_account_is_refused(app, client):
    with app.app_context():
        user = User(email="reader@example.org", email_key="reader@example.org", password_hash="x")
        db.session.add(user)
        db.session.flush()
        from newsletter.domain.api_tokens import issue_api_token

        token = issue_api_token(user)
        db.session.commit()
    response = client.get("/api/v1/digests", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


# ---------------------------------------------------------------------------------------------
# Subscribers


def test_subscribers_are_listed_by_status_and_page(app, api):
    with app.app_context():
        add_subscribers(7, status="confirmed")
        add_subscribers(2, status="pending")
        add_subscribers(1, status="unsubscribed")
    response = api.get("/api/v1/subscribers?status=confirmed&page=2&per_page=5")
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 7 and body["pages"] == 2 and body["page"] == 2
    assert len(body["items"]) == 2
    assert {item["status"] for item in body["items"]} == {"confirmed"}
    everyone = api.get("/api/v1/subscribers?per_page=200").get_json()
    assert everyone["total"] == 10
    assert api.get("/api/v1/subscribers?page=99").get_json()["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        "status=deleted",
        "page=0",
        "page=-1",
        "page=abc",
        "page=99999999999999999999",
        "per_page=1000",
        "language=de",
    ],
)
def test_bad_listing_parameters_get_a_422_naming_the_parameter(api, query):
    response = api.get(f"/api/v1/subscribers?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in error_of(response)["fields"]


# ---------------------------------------------------------------------------------------------
# Releases


def test_a_release_is_created_with_its_body_sanitised(app, api):
    response = api.post(
        "/api/v1/releases",
        json={
            "title": "Nouveau portail",
            "dateline": "Bruxelles",
            "summary": "<b>Vidéos</b> en HD",
            "body": '<p onclick="steal()">Texte <script>alert(1)</script>'
            '<a href="javascript:alert(1)">x</a><a href="https://example.org">ok</a></p>'
            "<iframe src='https://evil.example'></iframe><style>p{}</style>",
            "url": "https://example.org/portail",
            "language": "fr",
            "published_at": "2025-03-01T09:00:00+01:00",
        },
    )
    assert response.status_code == 201, response.get_json()
    release = response.get_json()
    assert release["published_at"] == "2025-03-01T08:00:00Z"
    assert release["summary"] == "Vidéos en HD"
    body = release["body"]
    for forbidden in ("script", "onclick", "javascript:", "iframe", "style", "alert"):
        assert forbidden not in body, body
    assert '<a href="https://example.org" rel="noopener noreferrer">ok</a>' in body
    with app.app_context():
        assert db.session.get(Release, release["id"]).body_html == body


@pytest.mark.parametrize("translation_of", [2**63, 2**70, -1, 0])
def test_a_translation_of_no_possible_release_is_refused_not_a_500(app, api, translation_of):
    """Found by the schemathesis run: an id past the database's integer range reached the
    query, and SQLite raised OverflowError (a 500)."""
    response = api.post(
        "/api/v1/releases",
        json={
            "title": "Nouveau portail",
            "url": "https://example.org/portail",
            "language": "fr",
            "translation_of": translation_of,
        },
    )
    assert_refused_with_the_field(app, response, Release, "translation_of")


# A bad value for each field of a release, and a field no release has ("colour").
BAD_RELEASE = {
    "title": "",
    "url": "javascript:alert(1)",
    "image_url": "ftp://example.org/x.png",
    "language": "de",
    "published_at": "yesterday",
    "dateline": "a\nb",
    "colour": "red",
}


def test_release_errors_name_every_bad_field_and_store_nothing(app, api):
    response = api.post("/api/v1/releases", json=BAD_RELEASE)
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == set(BAD_RELEASE)
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('{"title": 5, "language": "fr"}', "application/json", 422),
        ('{"title": ["x"], "language": "fr"}', "application/json", 422),
        ("title=x&language=fr", "application/x-www-form-urlencoded", 415),
        ('{"title": "' + "x" * 301 + '", "language": "fr"}', "application/json", 422),
    ],
)
def test_malformed_release_posts_get_a_clear_4xx(api, data, content_type, status):
    response = api.post("/api/v1/releases", data=data, content_type=content_type)
    assert response.status_code == status
    error_of(response)


def test_releases_are_listed_newest_first_and_paginated(app, api):
    now = utcnow()
    with app.app_context():
        for hours in (5, 1, 3, 2, 4):
            add_release(title=f"{hours}h ago", published_at=now - timedelta(hours=hours))
    first = api.get("/api/v1/releases?per_page=2").get_json()
    second = api.get("/api/v1/releases?per_page=2&page=2").get_json()
    assert [r["title"] for r in first["items"]] == ["1h ago", "2h ago"]
    assert [r["title"] for r in second["items"]] == ["3h ago", "4h ago"]
    assert first["total"] == 5


def test_a_release_can_be_changed_and_unknown_ones_are_404(app, api):
    created = api.post("/api/v1/releases", json={"title": "Draft", "language": "en"}).get_json()
    changed = api.patch(
        f"/api/v1/releases/{created['id']}", json={"title": "Final", "body": "<p>x<script>"}
    )
    assert changed.status_code == 200
    assert changed.get_json()["title"] == "Final"
    assert changed.get_json()["body"] == "<p>x</p>"
    assert api.patch(f"/api/v1/releases/{created['id']}", json={"title": ""}).status_code == 422
    for missing in ("999", "0", "99999999999999999999999"):
        response = api.get(f"/api/v1/releases/{missing}")
        assert response.status_code == 404
        error_of(response)


# ---------------------------------------------------------------------------------------------
# Digests


def test_a_digest_is_scheduled_and_reported(app, api):
    send_at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    response = api.post(
        "/api/v1/digests",
        json={"language": "fr", "send_at": send_at.isoformat() + "Z", "subject": "Hebdo"},
    )
    assert response.status_code == 201
    created = response.get_json()
    assert created["status"] == "scheduled"
    body = api.get(f"/api/v1/digests/{created['id']}").get_json()
    assert body["id"] == created["id"]
    assert body["status"] == "scheduled"
    assert body["send_at"] == send_at.isoformat() + "Z"
    assert (body["recipients"], body["sent"], body["failed"], body["pending"]) == (0, 0, 0, 0)
    assert body["subject"] == "Hebdo"


def test_a_digest_without_send_at_is_due_now(app, api):
    before = utcnow()
    created = api.post("/api/v1/digests", json={"language": "en"}).get_json()
    with app.app_context():
        digest = digest_row(created["id"])
        assert before - timedelta(seconds=1) <= digest.send_at <= utcnow()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "language"),
        ({"language": "de"}, "language"),
        ({"language": "fr", "send_at": "next tuesday"}, "send_at"),
        ({"language": "fr", "send_at": "2001-01-01T00:00:00Z"}, "send_at"),
        ({"language": "fr", "send_at": 12}, "send_at"),
        ({"language": "fr", "subject": "a\r\nBcc: victim@example.org"}, "subject"),
        ({"language": "fr", "subject": "x" * 301}, "subject"),
        ({"language": "fr", "recipients": 5}, "recipients"),
    ],
)
def test_bad_digest_requests_are_refused_with_the_field(app, api, payload, field):
    assert_refused_with_the_field(app, api.post("/api/v1/digests", json=payload), Digest, field)


def test_pause_resume_and_cancel(app, api):
    created = api.post(
        "/api/v1/digests",
        json={"language": "fr", "send_at": (utcnow() + timedelta(hours=1)).isoformat()},
    ).get_json()
    path = f"/api/v1/digests/{created['id']}"
    assert api.post(f"{path}/pause").get_json()["paused"] is True
    assert api.post(f"{path}/resume").get_json()["paused"] is False
    cancelled = api.post(f"{path}/cancel").get_json()
    assert cancelled["status"] == "failed"
    assert cancelled["failure_reason"] == "cancelled"
    again = api.post(f"{path}/cancel")
    assert again.status_code == 409
    assert error_of(again)["code"] == "conflict"
    assert api.post(f"{path}/resume").status_code == 409
    assert api.post("/api/v1/digests/424242/pause").status_code == 404


def test_cancelling_a_sending_digest_drops_its_queued_deliveries(app, api, run_worker):
    with app.app_context():
        add_subscribers(4, language="fr")
        add_release(language="fr")
    created = api.post("/api/v1/digests", json={"language": "fr"}).get_json()
    with app.app_context():
        from newsletter.delivery.digests import run_digest

        assert run_digest(created["id"]).result == "sending"
    body = api.post(f"/api/v1/digests/{created['id']}/cancel").get_json()
    assert body["status"] == "failed" and body["failure_reason"] == "cancelled"
    assert body["pending"] == 0 and body["cancelled"] == 4
    run_worker()
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count(Delivery.id)).where(Delivery.status == DeliveryStatus.SENT)
            )
            == 0
        )


def test_deliveries_preview_test_send_and_resend_failed(app, api, mailbox, smtp_sink, run_worker):
    with app.app_context():
        add_subscribers(3, language="en", prefix="ok")
        add_subscribers(1, language="en", prefix="refused")
        add_release(language="en", title="Budget presented", url="https://example.org/budget")
    smtp_sink.rcpt_answers["refused-0@example.org"] = "550 5.1.1 No such user"
    created = api.post("/api/v1/digests", json={"language": "en"}).get_json()

    preview = api.get(f"/api/v1/digests/{created['id']}/preview").get_json()
    assert "Budget presented" in preview["subject"]
    assert "Budget presented" in preview["text"] and "Budget presented" in preview["html"]
    html = api.get(f"/api/v1/digests/{created['id']}/preview?format=html")
    assert html.mimetype == "text/html" and b"Budget presented" in html.data

    run_worker()
    assert len(mailbox.wait_for(3)) == 3
    body = api.get(f"/api/v1/digests/{created['id']}").get_json()
    assert (body["status"], body["recipients"], body["sent"], body["failed"]) == (
        "sent",
        4,
        3,
        1,
    )
    failed = api.get(f"/api/v1/digests/{created['id']}/deliveries?status=failed").get_json()
    [row] = failed["items"]
    assert row["email"] == "refused-0@example.org"
    assert row["smtp_code"] == 550 and "No such user" in row["smtp_response"]
    everyone = api.get(f"/api/v1/digests/{created['id']}/deliveries").get_json()
    assert everyone["total"] == 4

    # The address works again: staff re-send to the failed ones only.
    smtp_sink.rcpt_answers.clear()
    mailbox.clear()
    resent = api.post(f"/api/v1/digests/{created['id']}/resend-failed").get_json()
    assert resent["requeued"] == 1 and resent["digest"]["status"] == "sending"
    run_worker()
    [again] = mailbox.wait_for(1)
    assert again.to == "refused-0@example.org"
    body = api.get(f"/api/v1/digests/{created['id']}").get_json()
    assert (body["status"], body["sent"], body["failed"]) == ("sent", 4, 0)

    mailbox.clear()
    response = api.post(
        f"/api/v1/digests/{created['id']}/test-send", json={"email": "editor@example.org"}
    )
    assert response.status_code == 202
    assert (
        api.post(
            f"/api/v1/digests/{created['id']}/test-send", json={"email": "not an address"}
        ).status_code
        == 422
    )
    run_worker()
    [test] = mailbox.wait_for(1)
    assert test.to == "editor@example.org"
    assert test.header("Subject").startswith("[TEST] ")
    assert "Budget presented" in test.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Delivery.id))) == 4  # no delivery row


# ---------------------------------------------------------------------------------------------
# Schedules


def test_schedules_crud(app, api):
    created = api.post(
        "/api/v1/schedules",
        json={"language": "fr", "every": "week", "at": "08:30", "weekday": "monday"},
    )
    assert created.status_code == 201, created.get_json()
    schedule = created.get_json()
    assert schedule["cron"] == "30 8 * * mon"
    assert schedule["timezone"] == "Europe/Brussels"
    assert schedule["status"] == "active" and schedule["next_run_at"].endswith("Z")

    path = f"/api/v1/schedules/{schedule['id']}"
    changed = api.patch(path, json={"cron": "0 7 * * *", "timezone": "America/New_York"})
    assert changed.status_code == 200
    assert changed.get_json()["cron"] == "0 7 * * *"
    assert api.post(f"{path}/pause").get_json()["status"] == "paused"
    assert api.get(path).get_json()["next_run_at"] is None
    assert api.post(f"{path}/resume").get_json()["status"] == "active"
    assert api.get("/api/v1/schedules").get_json()["total"] == 1
    assert api.delete(path).get_json()["status"] == "cancelled"
    assert api.post(f"{path}/resume").status_code == 409
    assert api.patch(path, json={"subject": "x"}).status_code == 409
    with app.app_context():
        row = db.session.get(DigestSchedule, schedule["id"])
        assert row.status == ScheduleStatus.CANCELLED


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"language": "fr"}, "cron"),
        ({"language": "fr", "cron": "every monday"}, "cron"),
        ({"language": "fr", "cron": "61 * * * *"}, "cron"),
        ({"language": "fr", "cron": "0 8 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"language": "fr", "cron": "0 8 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"language": "fr", "every": "month", "at": "08:00"}, "every"),
        ({"language": "fr", "every": "day", "at": "25:00"}, "at"),
        ({"language": "fr", "every": "week", "at": "08:00"}, "weekday"),
        ({"cron": "0 8 * * *"}, "language"),
    ],
)
def test_bad_schedules_are_refused(app, api, payload, field):
    response = api.post("/api/v1/schedules", json=payload)
    assert_refused_with_the_field(app, response, DigestSchedule, field)


# ---------------------------------------------------------------------------------------------
# OpenAPI


def test_openapi_describes_every_api_v1_route(app, api):
    spec = api.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method))
    assert routes <= described, sorted(routes - described)
    for path in (
        "/api/v1/subscriptions",
        "/api/v1/account/password-reset",
        "/api/v1/account/password-reset/confirm",
    ):
        assert path in spec["paths"]
    # Every $ref points at something defined.
    text = str(spec)
    for kind in ("schemas", "responses"):
        for name in spec["components"][kind]:
            assert f"#/components/{kind}/{name}" in text or kind == "schemas"


def test_a_browser_session_cannot_write_without_a_json_body(app, client):
    """Cross-site forms cannot send JSON: session writes must, so CSRF has nothing to ride."""
    with app.app_context():
        user = User(
            email="editor@example.org",
            email_key="editor@example.org",
            password_hash="x",
            is_staff=True,
            staff_role="owner",
        )
        db.session.add(user)
        db.session.commit()
        session_id = user.get_id()
    from flask_login.utils import _create_identifier

    with app.test_request_context(environ_base=client.environ_base):
        identifier = _create_identifier()  # what Flask-Login's strong protection checks
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True
        session["_id"] = identifier
    form = client.post("/api/v1/digests", data={"language": "fr"})
    assert form.status_code == 415
    assert client.post("/api/v1/digests/1/pause").status_code == 415
    ok = client.post("/api/v1/digests", json={"language": "fr"})
    assert ok.status_code == 201
    with app.app_context():
        assert db.session.scalars(select(Digest.status)).all() == [DigestStatus.SCHEDULED]


HOSTILE_BODIES = [
    '{"title": "x", "language": "fr", "url": "http://[::1"}',
    '{"title": "x", "language": "fr", "url": "http://example.org:99999999/"}',
    '{"title": "x", "language": "fr", "image_url": "http://example.org:abc/"}',
    '{"title": "x", "language": "fr", "published_at": "9999-12-31T23:59:59-23:00"}',
    '{"language": "fr", "send_at": "0001-01-01T00:00:00+01:00"}',
    '{"language": "fr", "send_at": "2030-02-30T08:00:00"}',
    '{"language": "fr", "send_at": NaN}',
    '{"title": NaN, "language": "fr", "published_at": 1e400}',
    '{"title": {"a": 1}, "language": [], "summary": {}, "body": [], "url": 5}',
    '{"language": [], "subject": {}, "send_at": []}',
    '{"cron": "* * * * * * *", "language": "fr"}',
    '{"cron": "0 8 * * 99", "language": "fr"}',
    '{"cron": "*/0 * * * *", "language": "fr"}',
    '{"cron": "0 8 * * *", "language": "fr", "timezone": "\\u0000"}',
    '{"every": "day", "at": "\\u0661\\u0662:00", "language": "fr"}',
]


@pytest.mark.parametrize("path", ["/api/v1/releases", "/api/v1/digests", "/api/v1/schedules"])
def test_hostile_bodies_get_a_4xx_never_a_500(app, api, path):
    for body in HOSTILE_BODIES:
        response = api.post(path, data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, (body, response.status_code)
        error_of(response)
    release = api.post("/api/v1/releases", json={"title": "x", "language": "fr"}).get_json()
    schedule = api.post("/api/v1/schedules", json={"cron": "0 8 * * *", "language": "fr"})
    for target in (
        f"/api/v1/releases/{release['id']}",
        f"/api/v1/schedules/{schedule.get_json()['id']}",
    ):
        for body in HOSTILE_BODIES:
            response = api.patch(target, data=body, content_type="application/json")
            assert response.status_code < 500, (target, body)
