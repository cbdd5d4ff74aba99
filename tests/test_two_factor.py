"""Two-factor login for staff (issue 14): TOTP enrolment from a server-drawn QR code, a code
asked after the password, single-use recovery codes, wrong codes counted toward the login
throttle, enrolment required by role, and a fresh code asked for exports."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import segno
from sqlalchemy import select

from newsletter.config import LOGIN_FREE_FAILURES_PER_CLIENT, LOGIN_THROTTLE_BASE_DELAY
from newsletter.domain.accounts import create_staff
from newsletter.extensions import db
from newsletter.models import AuditEntry, StaffRecoveryCode
from tests.support.accounts import STRONG_PASSWORD, csrf_token, login, speak_english


def make_staff(app, email: str = "owner@example.org", role: str = "owner") -> None:
    with app.app_context():
        create_staff(email, STRONG_PASSWORD, language="en", role=role)
        db.session.commit()


def logged_in(app, email: str = "owner@example.org"):
    client = app.test_client()
    speak_english(client)
    response = login(client, email, STRONG_PASSWORD, next_url="/admin/")
    assert response.status_code == 303
    return client, response


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def enrol(client, email: str = "owner@example.org") -> tuple[str, list[str]]:
    page = client.get("/admin/2fa").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)
    # The QR code on the page is the otpauth URI of that very secret.
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Newsletter")
    expected = segno.make(uri, error="m").svg_inline(scale=5, border=2, title="QR code")
    assert expected in page
    response = client.post(
        "/admin/2fa", data={"code": code_at(secret), "csrf_token": csrf_token(client, "/admin/2fa")}
    )
    assert response.status_code == 200
    codes = re.findall(
        r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", response.get_data(as_text=True)
    )
    assert len(codes) == 10
    return secret, codes


def log_out(client) -> None:
    client.post("/account/logout", data={"csrf_token": csrf_token(client, "/admin/")})


def enrolled_owner(app) -> tuple[str, list[str]]:
    """The owner account, enrolled in two-factor login and logged out again: its TOTP secret
    and recovery codes."""
    make_staff(app)
    client, _ = logged_in(app)
    enrolment = enrol(client)
    log_out(client)
    return enrolment


def give_code(client, code: str, next_url: str = "/admin/"):
    return client.post(
        "/account/2fa",
        data={
            "code": code,
            "next": next_url,
            "csrf_token": csrf_token(client, "/account/2fa?next=/admin/"),
        },
    )


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_enrol_then_log_in_with_a_code_that_works_once(app):
    make_staff(app)
    client, _ = logged_in(app)
    secret, _codes = enrol(client)
    with app.app_context():
        hashes = list(db.session.scalars(select(StaffRecoveryCode.code_hash)))
        assert len(hashes) == 10 and all(len(h) == 64 for h in hashes)  # stored hashed
    log_out(client)

    client, response = logged_in(app)
    # The password alone opens nothing of the console or the API.
    assert client.get("/admin/").headers["Location"].startswith("/account/2fa")
    assert client.get("/api/v1/releases", headers={"Accept": "application/json"}).status_code == 401
    assert give_code(client, "000000").status_code == 401
    ok = give_code(client, code_at(secret, 1))
    assert ok.status_code == 303 and ok.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    log_out(client)

    client, _ = logged_in(app)
    assert give_code(client, code_at(secret, 1)).status_code == 401  # replayed
    assert give_code(client, code_at(secret, 0)).status_code == 401  # older
    assert actions(app).count("staff.2fa_failed") == 3
    assert actions(app).count("staff.2fa_passed") == 1


def test_a_recovery_code_works_once(app):
    _secret, codes = enrolled_owner(app)
    client, _ = logged_in(app)
    assert give_code(client, codes[3].upper()).status_code == 303
    log_out(client)
    client, _ = logged_in(app)
    assert give_code(client, codes[3]).status_code == 401
    assert give_code(client, codes[4]).status_code == 303


def test_wrong_codes_count_toward_the_login_throttle(app):
    secret, _codes = enrolled_owner(app)
    client, _ = logged_in(app)
    for _ in range(LOGIN_FREE_FAILURES_PER_CLIENT):
        assert give_code(client, "123456").status_code == 401
    # Throttled like a password: even the right code waits for the delay to run out.
    refused = give_code(client, code_at(secret, 1))
    assert refused.status_code == 429
    assert "wait a moment" in refused.get_data(as_text=True)
    assert client.get("/admin/").headers["Location"].startswith("/account/2fa")
    time.sleep(LOGIN_THROTTLE_BASE_DELAY.total_seconds() + 0.2)
    assert give_code(client, code_at(secret, 1)).status_code == 303
    assert client.get("/admin/").status_code == 200
    assert actions(app).count("staff.2fa_failed") == LOGIN_FREE_FAILURES_PER_CLIENT + 1


@pytest.fixture
def app_config(app_config):
    app_config["STAFF_2FA"] = "required"
    app_config["STAFF_STEP_UP_SECONDS"] = 60
    return app_config


def test_owners_and_senders_must_enrol_when_required(app):
    make_staff(app, "owner@example.org", "owner")
    make_staff(app, "editor@example.org", "editor")
    owner, _ = logged_in(app, "owner@example.org")
    assert owner.get("/admin/releases").headers["Location"] == "/admin/2fa"
    editor, _ = logged_in(app, "editor@example.org")
    assert editor.get("/admin/releases").status_code == 200
    enrol(owner)
    assert owner.get("/admin/releases").status_code == 200


def test_senders_must_enrol_when_required_and_viewers_need_not(app):
    """``NEWSLETTER_STAFF_2FA=required`` holds senders (who send to the whole list) like
    owners: after the password every console page leads to the enrolment page and the API
    answers a session with a JSON 401, until TOTP is on; a viewer is not asked."""
    make_staff(app, "sender@example.org", "sender")
    make_staff(app, "viewer@example.org", "viewer")
    sender, _ = logged_in(app, "sender@example.org")
    for path in ("/admin/", "/admin/digests", "/admin/subscribers"):
        assert sender.get(path).headers["Location"] == "/admin/2fa"
    refused = sender.post("/api/v1/digests", json={"language": "en"})
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "two_factor_enrolment_required"
    page = sender.get("/admin/2fa").get_data(as_text=True)
    assert 'id="totp-secret"' in page
    viewer, _ = logged_in(app, "viewer@example.org")
    assert viewer.get("/admin/digests").status_code == 200
    enrol(sender, "sender@example.org")
    assert sender.get("/admin/digests").status_code == 200
    assert sender.post("/api/v1/digests", json={"language": "en"}).status_code == 201
    assert actions(app).count("staff.2fa_enrolled") == 1


def test_wrong_codes_on_the_enrolment_page_are_throttled_like_login_codes(app):
    """Guessing at the enrolment form takes turns at the same throttle as a login code: after
    the free failures even the right code waits for the delay (429), each failure is in the
    audit log, and once the delay has run out the right code turns TOTP on."""
    make_staff(app, "sender@example.org", "sender")
    client, _ = logged_in(app, "sender@example.org")
    page = client.get("/admin/2fa").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)

    def try_code(code: str):
        token = csrf_token(client, "/admin/2fa")
        return client.post("/admin/2fa", data={"code": code, "csrf_token": token})

    for _ in range(LOGIN_FREE_FAILURES_PER_CLIENT):
        assert try_code("123456").status_code == 422
    refused = try_code(code_at(secret))
    assert refused.status_code == 429
    assert "wait a moment" in refused.get_data(as_text=True)
    assert client.get("/admin/digests").headers["Location"] == "/admin/2fa"
    time.sleep(LOGIN_THROTTLE_BASE_DELAY.total_seconds() + 0.2)
    assert try_code(code_at(secret)).status_code == 200
    assert client.get("/admin/digests").status_code == 200
    assert actions(app).count("staff.2fa_failed") == LOGIN_FREE_FAILURES_PER_CLIENT + 1
    assert actions(app).count("staff.2fa_enrolled") == 1


def test_exports_ask_for_a_fresh_code_after_a_while(app):
    make_staff(app)
    client, _ = logged_in(app)
    secret, _codes = enrol(client)
    assert client.get("/admin/subscribers/export.csv").status_code == 200
    with client.session_transaction() as session:
        session["staff_2fa_at"] = time.time() - 61
    asked = client.get("/admin/subscribers/export.csv")
    assert asked.status_code == 303
    assert asked.headers["Location"].startswith("/account/2fa?next=/admin/subscribers/export.csv")
    assert client.get("/admin/audit/export.json").status_code == 303
    assert give_code(client, code_at(secret, 1), "/admin/subscribers/export.csv").status_code == 303
    assert client.get("/admin/subscribers/export.csv").status_code == 200
    # Tokens are not sessions: no step-up for them (their scopes and expiry are the guard).
    assert actions(app).count("subscribers.export") == 2


def sending_targets(app) -> dict[str, int]:
    """A paused digest, a paused schedule and a sent digest with one failed delivery: what
    the whole-list routes act on."""
    from newsletter.domain.digests import create_digest, pause_digest
    from newsletter.domain.schedules import create_schedule, set_schedule_status
    from newsletter.models import Delivery, Digest, ScheduleStatus
    from tests.support.feedback import add_subscriber

    with app.app_context():
        paused = create_digest({"language": "en"})
        pause_digest(paused)
        schedule = create_schedule({"language": "en", "every": "day", "at": "08:00"})
        set_schedule_status(schedule, ScheduleStatus.PAUSED)
        sent = Digest(language="en", status="sent", rendered_message=b"Subject: x\r\n\r\nx")
        db.session.add(sent)
        db.session.flush()
        reader = add_subscriber("reader@example.org")
        db.session.add(Delivery(digest_id=sent.id, subscriber_id=reader.id, status="failed"))
        db.session.commit()
        return {"paused": paused.id, "schedule": schedule.id, "sent": sent.id}


def make_stale(client) -> None:
    with client.session_transaction() as session:
        session["staff_2fa_at"] = time.time() - 61


# Every console form that sends to the whole list: (path, form fields); ids filled in.
CONSOLE_SENDS = [
    ("/admin/digests", {"language": "en", "when": "now", "timezone": "Europe/Brussels"}),
    (
        "/admin/digests/schedules",
        {"language": "en", "every": "day", "at": "08:00", "timezone": "Europe/Brussels"},
    ),
    ("/admin/digests/{paused}/resume", {}),
    ("/admin/digests/schedules/{schedule}/resume", {}),
]


@pytest.mark.parametrize(("path", "form"), CONSOLE_SENDS, ids=[p for p, _ in CONSOLE_SENDS])
def test_console_sends_to_the_whole_list_ask_for_a_fresh_code(app, path, form):
    """After ``STAFF_STEP_UP_SECONDS`` without a code, a whole-list send from the console goes
    to the code page and changes nothing (no audit entry); with a fresh code it is done."""
    make_staff(app, "sender@example.org", "sender")
    client, _ = logged_in(app, "sender@example.org")
    secret, _codes = enrol(client, "sender@example.org")
    path = path.format(**sending_targets(app))
    before = actions(app)
    make_stale(client)
    data = {**form, "csrf_token": csrf_token(client, "/admin/digests")}
    asked = client.post(path, data=data, headers={"Referer": "http://localhost/admin/digests"})
    assert asked.status_code == 303
    assert asked.headers["Location"].startswith("/account/2fa?next=/admin/digests&step_up=1")
    assert actions(app) == before
    assert give_code(client, code_at(secret, 1), "/admin/digests").status_code == 303
    done = client.post(path, data={**form, "csrf_token": csrf_token(client, "/admin/digests")})
    assert done.status_code == 303
    assert not done.headers["Location"].startswith("/account/2fa")
    [new] = [action for action in actions(app)[len(before) :] if action != "staff.2fa_passed"]
    assert new.split(".")[0] in ("digest", "schedule")


# Every API route that sends to the whole list: (path, JSON body); ids filled in.
API_SENDS = [
    ("/api/v1/digests", {"language": "en"}),
    ("/api/v1/schedules", {"language": "en", "every": "day", "at": "08:00"}),
    ("/api/v1/digests/{paused}/resume", None),
    ("/api/v1/digests/{sent}/resend-failed", None),
    ("/api/v1/schedules/{schedule}/resume", None),
]


@pytest.mark.parametrize(("path", "body"), API_SENDS, ids=[p for p, _ in API_SENDS])
def test_api_sends_ask_a_session_for_a_fresh_code_and_a_token_for_the_send_scope(app, path, body):
    """The staff API used from a console session asks for a fresh code like the console (a
    JSON 401 ``step_up_required``, nothing done); a token carries no second factor, so its
    guard is the ``digests:send`` scope: without it 403, with it the send is done."""
    from newsletter.domain.api_tokens import issue_api_token
    from newsletter.domain.staff import parse_scopes
    from tests.support.accounts import user_by_email

    make_staff(app, "sender@example.org", "sender")
    client, _ = logged_in(app, "sender@example.org")
    secret, _codes = enrol(client, "sender@example.org")
    targets = sending_targets(app)
    path = path.format(**targets)
    with app.app_context():
        sender = user_by_email("sender@example.org")
        reader = issue_api_token(sender, name="read", scopes=parse_scopes(["digests:read"]))
        sending = issue_api_token(sender, name="send", scopes=parse_scopes(["digests:send"]))
        db.session.commit()
    before = actions(app)
    make_stale(client)
    asked = client.post(path, json=body or {})
    assert asked.status_code == 401
    assert asked.get_json()["error"]["code"] == "step_up_required"
    refused = app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
    assert actions(app) == before
    done = app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {sending}"})
    assert done.status_code in (200, 201), done.get_json()
    assert give_code(client, code_at(secret, 1), "/admin/").status_code == 303
    again = client.post(path, json=body or {})
    # With a fresh code the session passes the gate (a resume twice is no conflict; a second
    # resend has nothing failed left but is no error either).
    assert again.status_code in (200, 201), again.get_json()
