"""Accounts end to end through a real SMTP server: registration, verification, login and
logout, lockouts, the account page, staff commands, and both languages."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.domain import codes
from newsletter.domain.accounts import create_staff
from newsletter.domain.api_tokens import user_for_api_token
from newsletter.domain.passwords import PasswordRejected, password_hasher, verify_password
from newsletter.extensions import db
from newsletter.models import ApiToken, OneTimeCode, OutboxMessage, Subscriber, User
from tests.support.accounts import (
    OTHER_STRONG_PASSWORD,
    STRONG_PASSWORD,
    age_codes,
    code_in,
    codes_of,
    csrf_token,
    login,
    make_user,
    path_of,
    post_form,
    speak_english,
    user_by_email,
)

EMAIL = "reporter@example.org"


def register(client, email=EMAIL, password=STRONG_PASSWORD, **extra):
    data = {"email": email, "password": password, "language": "en", **extra}
    return post_form(client, "/account/register", "/account/register", data)


def verify(client, code, email=EMAIL):
    return post_form(client, "/account/verify", "/account/verify", {"email": email, "code": code})


def outbox_kinds(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)))


# --- register → verify → login ----------------------------------------------------------


def test_register_verify_by_code_then_log_in(app, client, mailbox, run_worker):
    response = register(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/verify"
    with app.app_context():
        user = user_by_email(EMAIL)
        assert user is not None and user.email_verified_at is None
        assert user.password_hash.startswith("$argon2id$")
        assert STRONG_PASSWORD not in user.password_hash

    # Unverified: the right password does not open a session yet.
    response = login(client, EMAIL, STRONG_PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/verify"
    assert client.get("/account").status_code == 302

    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.to == EMAIL
    assert message.header("Subject") == "Your verification code"
    assert message.header("Content-Language") == "en"
    [link] = message.links()
    assert link.startswith("https://news.example.org/account/verify/")
    page = client.get("/account/verify")
    assert EMAIL in page.get_data(as_text=True)  # pre-filled from the session

    response = verify(client, code_in(message))
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login"
    with app.app_context():
        assert user_by_email(EMAIL).email_verified_at is not None

    response = login(client, EMAIL, STRONG_PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    page = client.get("/account")
    assert page.status_code == 200
    assert EMAIL in page.get_data(as_text=True)

    # The same code twice: refused; and the emailed link names the same, now spent, code.
    assert verify(client, code_in(message)).status_code == 400
    assert client.get(path_of(link)).status_code == 400


def test_verify_by_emailed_link_needs_a_click(app, client, mailbox, run_worker):
    register(client)
    run_worker()
    [link] = mailbox.wait_for(1)[0].links()
    # A mail scanner's GET verifies nothing.
    page = client.get(path_of(link))
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    with app.app_context():
        assert user_by_email(EMAIL).email_verified_at is None
    response = post_form(client, path_of(link), path_of(link), {})
    assert response.status_code == 303
    with app.app_context():
        assert user_by_email(EMAIL).email_verified_at is not None
    # One time only.
    assert post_form(client, "/account/verify", path_of(link), {}).status_code == 400
    assert login(client, EMAIL, STRONG_PASSWORD).headers["Location"] == "/account"


def test_verification_link_dies_when_the_address_changes(app, client, mailbox, run_worker):
    register(client)
    run_worker()
    [link] = mailbox.wait_for(1)[0].links()
    with app.app_context():
        user = user_by_email(EMAIL)
        user.email = user.email_key = "moved@example.org"
        db.session.commit()
    assert client.get(path_of(link)).status_code == 400


def test_verify_resend_replaces_the_code(app, client, mailbox, run_worker):
    register(client)
    with app.app_context():
        user_id = user_by_email(EMAIL).id
    age_codes(app, user_id, codes.VERIFY_EMAIL, 61)
    response = post_form(client, "/account/verify", "/account/verify/resend", {"email": EMAIL})
    assert response.status_code == 303
    run_worker()
    first, second = mailbox.wait_for(2)
    if code_in(first) != code_in(second):
        assert verify(client, code_in(first)).status_code == 400
    assert verify(client, code_in(second)).status_code == 303


def test_registration_json(app, client, mailbox, run_worker):
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": STRONG_PASSWORD, "language": "fr"},
    )
    assert response.status_code == 202
    assert response.get_json() == {"status": "pending"}
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.header("Content-Language") == "fr"
    response = client.post("/account/verify", json={"email": EMAIL, "code": code_in(message)})
    assert response.status_code == 200
    assert response.get_json() == {"status": "verified"}
    response = client.post("/account/login", json={"email": EMAIL, "password": STRONG_PASSWORD})
    assert response.status_code == 200
    assert client.get("/account").status_code == 200


def test_weak_password_at_registration_names_each_rule(app, client):
    response = client.post(
        "/api/v1/account/register", json={"email": EMAIL, "password": "reporter pw"}
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert set(error["rules"]) == {
        "min_length",
        "no_spaces",
        "uppercase",
        "digit",
        "symbol",
        "contains_email",
    }
    speak_english(client)
    page = register(client, password="reporter pw")
    assert page.status_code == 422
    body = page.get_data(as_text=True)
    for text in ("at least 12 characters", "spaces", "upper-case", "digit", "symbol", "email"):
        assert text in body, text
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_registering_a_taken_address_looks_the_same_and_tells_the_owner(app, mailbox, run_worker):
    make_user(app, "owner@example.org", OTHER_STRONG_PASSWORD)
    answers = []
    for email in ("owner@example.org", "newcomer@example.org"):
        client = app.test_client()
        page = register(client, email=email)
        api = app.test_client().post(
            "/api/v1/account/register", json={"email": email, "password": STRONG_PASSWORD}
        )
        answers.append(
            (
                page.status_code,
                page.headers["Location"],
                page.get_data(),
                api.status_code,
                api.get_data(),
            )
        )
    assert answers[0] == answers[1]
    run_worker()
    messages = mailbox.wait_for(3)
    to_owner = [m for m in messages if m.to == "owner@example.org"]
    assert to_owner and all(
        m.header("Subject") == "Someone tried to register with your address" for m in to_owner
    )
    assert not any(re.search(r"^\s+\d{6}\s*$", m.text, re.MULTILINE) for m in to_owner)
    # The owner's password is untouched.
    with app.app_context():
        owner = user_by_email("owner@example.org")
        assert verify_password(owner.password_hash, OTHER_STRONG_PASSWORD).matches


def test_account_exists_notices_are_capped(app, mailbox, run_worker):
    make_user(app, "owner@example.org")
    for _ in range(6):
        app.test_client().post(
            "/api/v1/account/register",
            json={"email": "owner@example.org", "password": STRONG_PASSWORD},
        )
    assert outbox_kinds(app).count("account_exists") == 3


def test_also_subscribe_me_starts_the_double_opt_in(app, client, mailbox, run_worker):
    response = register(client, subscribe="yes")
    assert response.status_code == 303
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email_key == EMAIL))
        assert subscriber is not None and subscriber.status == "pending"
        assert subscriber.consent_source == "account"
    run_worker()
    messages = mailbox.wait_for(2)
    subjects = sorted(m.header("Subject") for m in messages)
    assert any("subscription" in s.lower() for s in subjects)
    assert "Your verification code" in subjects


def test_without_the_box_no_subscription(app, client):
    register(client)
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 0


def test_register_form_needs_its_csrf_token(app, client):
    response = client.post("/account/register", data={"email": EMAIL, "password": STRONG_PASSWORD})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"email": "nope", "password": STRONG_PASSWORD},
        {"email": ["a@b.example"], "password": STRONG_PASSWORD},
        {"email": EMAIL, "password": 123456789012345},
        {"email": EMAIL, "password": STRONG_PASSWORD, "language": "de"},
        {"email": EMAIL + "\r\nBcc: x@example.org", "password": STRONG_PASSWORD},
    ],
)
def test_hostile_registrations_get_clear_4xx(app, client, payload):
    response = client.post("/api/v1/account/register", json=payload)
    assert 400 <= response.status_code < 500
    assert "error" in response.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


# --- login, logout, lockouts --------------------------------------------------------------


def test_login_clears_the_old_session(app, client):
    make_user(app, EMAIL)
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        session["lang"] = "en"
    assert login(client, EMAIL, STRONG_PASSWORD).status_code == 303
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["lang"] == "en"  # the visitor's language choice survives
        assert session["_user_id"].startswith(str(user_by_email_id(app, EMAIL)))


def user_by_email_id(app, email):
    with app.app_context():
        return user_by_email(email).id


def test_logout_is_a_post_and_ends_the_session(app, client):
    make_user(app, EMAIL)
    login(client, EMAIL, STRONG_PASSWORD)
    assert client.get("/account/logout").status_code == 405
    response = client.post("/account/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 303
    assert client.get("/account").status_code == 302


def test_unknown_address_and_wrong_password_get_the_same_answer(app):
    make_user(app, EMAIL)
    wrong = login(app.test_client(), EMAIL, "Wrong-Password-123!")
    unknown = login(app.test_client(), "ghost@example.org", "Wrong-Password-123!")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda r: re.sub(r'value="[^"]*"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(wrong) == strip(unknown)


def test_a_client_that_keeps_failing_waits_but_is_never_locked_out(app):
    """Issue 11: throttling, not lock-out. The failing client waits; the wait lapses."""
    from newsletter.config import LOGIN_FREE_FAILURES_PER_CLIENT
    from newsletter.models import LoginThrottle

    make_user(app, EMAIL)
    for number in range(LOGIN_FREE_FAILURES_PER_CLIENT):
        response = login(app.test_client(), EMAIL, f"Wrong-Password-{number}!")
        assert response.status_code == 401
    # This client (127.0.0.1) has been failing: even the right password waits its turn.
    assert login(app.test_client(), EMAIL, STRONG_PASSWORD).status_code == 401
    # Once the delay lapses the right password works again, and the count starts over.
    with app.app_context():
        for row in db.session.scalars(select(LoginThrottle)):
            row.blocked_until = None
        db.session.commit()
    assert login(app.test_client(), EMAIL, STRONG_PASSWORD).status_code == 303
    with app.app_context():
        counts = {row.key: row.failures for row in db.session.scalars(select(LoginThrottle))}
        assert [count for key, count in counts.items() if key.count(":") == 2] == [0]


def test_failed_logins_are_limited_per_ip(make_app):
    client = make_app(LOGIN_RATE_LIMIT="3/minute").test_client()
    statuses = [
        client.post(
            "/account/login", json={"email": f"u{n}@example.org", "password": "Nope-123456!"}
        ).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    # Another IP is not affected.
    other = client.post(
        "/account/login",
        json={"email": "u9@example.org", "password": "Nope-123456!"},
        environ_base={"REMOTE_ADDR": "192.0.2.9"},
    )
    assert other.status_code == 401


def test_successful_logins_do_not_use_up_the_ip_limit(make_app):
    application = make_app(LOGIN_RATE_LIMIT="2/minute")
    make_user(application, EMAIL)
    for _ in range(4):
        response = application.test_client().post(
            "/account/login", json={"email": EMAIL, "password": STRONG_PASSWORD}
        )
        assert response.status_code == 200


def test_login_rehashes_a_hash_made_with_older_parameters(app, client):
    user_id = make_user(app, EMAIL)
    weak = password_hasher(time_cost=1, memory_kib=8192, parallelism=1)
    with app.app_context():
        user = db.session.get(User, user_id)
        user.password_hash = weak.hash(STRONG_PASSWORD)
        db.session.commit()
    assert login(client, EMAIL, STRONG_PASSWORD).status_code == 303
    with app.app_context():
        stored = db.session.get(User, user_id).password_hash
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert verify_password(stored, STRONG_PASSWORD).matches


def test_login_page_redirects_to_a_same_site_next(app, client):
    make_user(app, EMAIL)
    page = client.get("/account/login?next=/downloads/1")
    assert 'name="next" value="/downloads/1"' in page.get_data(as_text=True)
    response = login(client, EMAIL, STRONG_PASSWORD, next_url="/downloads/1")
    assert response.headers["Location"] == "/downloads/1"


# --- the account page ---------------------------------------------------------------------


def logged_in(app, email=EMAIL, password=STRONG_PASSWORD, **kwargs):
    make_user(app, email, password, **kwargs)
    client = app.test_client()
    assert login(client, email, password).status_code == 303
    return client


def test_account_page_needs_a_login(app, client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/login?next=")


def test_change_password_ends_other_sessions_but_not_this_one(app, mailbox, run_worker):
    client = logged_in(app)
    other = app.test_client()
    login(other, EMAIL, STRONG_PASSWORD)
    data = {"current_password": "Wrong-Password-1!", "new_password": OTHER_STRONG_PASSWORD}
    assert post_form(client, "/account", "/account/password", data).status_code == 400
    data = {"current_password": STRONG_PASSWORD, "new_password": "weak"}
    response = post_form(client, "/account", "/account/password", data)
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)
    data = {"current_password": STRONG_PASSWORD, "new_password": OTHER_STRONG_PASSWORD}
    assert post_form(client, "/account", "/account/password", data).status_code == 303
    assert client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.header("Subject") == "Your password was changed"


def test_change_email_is_verified_at_the_new_address(app, mailbox, run_worker):
    client = logged_in(app)
    data = {"new_email": "new@example.org", "password": STRONG_PASSWORD}
    response = post_form(client, "/account", "/account/email", data)
    assert response.status_code == 303
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.to == "new@example.org"
    with app.app_context():
        assert user_by_email(EMAIL) is not None  # nothing changes until the code is entered
    page = client.get("/account").get_data(as_text=True)
    assert "new@example.org" in page
    wrong = f"{(int(code_in(message)) + 1) % 1_000_000:06d}"
    assert (
        post_form(client, "/account", "/account/email/confirm", {"code": wrong}).status_code == 400
    )
    response = post_form(client, "/account", "/account/email/confirm", {"code": code_in(message)})
    assert response.status_code == 303
    with app.app_context():
        assert user_by_email(EMAIL) is None
        assert user_by_email("new@example.org").email_verified_at is not None
    run_worker()
    notice = mailbox.wait_for(2)[1]
    assert notice.to == EMAIL
    assert "new@example.org" in notice.text
    # The new address logs in.
    assert login(app.test_client(), "new@example.org", STRONG_PASSWORD).status_code == 303


def test_change_email_by_link(app, mailbox, run_worker):
    client = logged_in(app)
    post_form(
        client,
        "/account",
        "/account/email",
        {"new_email": "new@example.org", "password": STRONG_PASSWORD},
    )
    run_worker()
    [link] = mailbox.wait_for(1)[0].links()
    assert link.startswith("https://news.example.org/account/email/confirm/")
    assert client.get(path_of(link)).status_code == 200
    assert post_form(client, path_of(link), path_of(link), {}).status_code == 303
    with app.app_context():
        assert user_by_email("new@example.org") is not None
    assert post_form(client, "/account", path_of(link), {}).status_code == 400


def test_change_email_to_a_taken_address_reveals_nothing(app, mailbox, run_worker):
    make_user(app, "taken@example.org")
    client = logged_in(app)
    data = {"new_email": "taken@example.org", "password": STRONG_PASSWORD}
    response = post_form(client, "/account", "/account/email", data)
    assert response.status_code == 303
    assert outbox_kinds(app) == ["account_exists"]
    with app.app_context():
        assert db.session.scalar(select(func.count(OneTimeCode.id))) == 0


def test_change_email_needs_the_password(app):
    client = logged_in(app)
    data = {"new_email": "new@example.org", "password": "Wrong-Password-1!"}
    assert post_form(client, "/account", "/account/email", data).status_code == 400
    assert outbox_kinds(app) == []


def test_download_my_data(app):
    client = logged_in(app)
    client.post("/api/v1/subscriptions", json={"email": EMAIL, "language": "en"})
    response = client.get("/account/data")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data())
    assert data["account"]["email"] == EMAIL
    assert data["newsletter"]["status"] == "pending"
    assert "password" not in json.dumps(data).lower()


def test_delete_my_account(app):
    client = logged_in(app)
    assert (
        post_form(client, "/account", "/account/delete", {"password": "Wrong-1234567!"}).status_code
        == 400
    )
    response = post_form(client, "/account", "/account/delete", {"password": STRONG_PASSWORD})
    assert response.status_code == 200
    with app.app_context():
        assert user_by_email(EMAIL) is None
    assert client.get("/account").status_code == 302
    assert login(app.test_client(), EMAIL, STRONG_PASSWORD).status_code == 401


# --- staff --------------------------------------------------------------------------------


def test_staff_create_token_and_revoke(app, runner):
    result = runner.invoke(args=["staff", "create", "chief@example.org"], input="weak\n")
    assert result.exit_code != 0
    assert "Use at least 12 characters." in result.output
    result = runner.invoke(
        args=["staff", "create", "chief@example.org"], input=STRONG_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = user_by_email("chief@example.org")
        assert user.is_staff and user.email_verified_at is not None
        assert verify_password(user.password_hash, STRONG_PASSWORD).matches
    result = runner.invoke(
        args=["staff", "create", "chief@example.org"], input=STRONG_PASSWORD + "\n"
    )
    assert result.exit_code != 0 and "already" in result.output

    result = runner.invoke(args=["staff", "token", "chief@example.org"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    with app.app_context():
        assert user_for_api_token(token).email == "chief@example.org"
        assert db.session.scalar(select(ApiToken.token_hash)) != token
    result = runner.invoke(args=["staff", "revoke", "chief@example.org"])
    assert result.exit_code == 0 and "revoked 1" in result.output
    with app.app_context():
        assert user_for_api_token(token) is None

    assert runner.invoke(args=["staff", "token", "nobody@example.org"]).exit_code != 0


def test_staff_create_from_a_shell_pipe(app, database_url):
    import os
    import subprocess
    import sys

    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url}
    result = subprocess.run(
        f"echo '{STRONG_PASSWORD}' | {sys.executable} -m flask --app newsletter "
        "staff create piped@example.org",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with app.app_context():
        assert user_by_email("piped@example.org").is_staff


def test_create_staff_enforces_the_policy(app):
    with app.app_context(), pytest.raises(PasswordRejected):
        create_staff("chief@example.org", "chief@example.org-Aa1!")


# --- both languages -----------------------------------------------------------------------

ACCOUNT_PAGES = [
    "/account/register",
    "/account/login",
    "/account/verify",
    "/account/reset",
    "/account/reset/confirm",
]


@pytest.mark.parametrize("page", ACCOUNT_PAGES)
def test_every_account_page_in_french_and_english(app, client, page):
    french = client.get(page, headers={"Accept-Language": "fr"}).get_data(as_text=True)
    english = app.test_client().get(page, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="fr">' in french and '<html lang="en">' in english
    title = lambda body: re.search(r"<h1>(.*?)</h1>", body).group(1)  # noqa: E731
    assert title(french) != title(english)
    for label in re.findall(r'<label for="[^"]+"[^>]*>(.*?)</label>', english):
        if label in ("Email address",):
            assert label not in french


def test_account_page_in_both_languages(app):
    make_user(app, EMAIL, language="fr")
    client = app.test_client()
    login(client, EMAIL, STRONG_PASSWORD)
    with client.session_transaction() as session:
        session.pop("lang", None)
    french = client.get("/account").get_data(as_text=True)
    assert "Mon compte" in french
    english = client.get("/account?lang=en").get_data(as_text=True)
    assert "My account" in english


@pytest.mark.parametrize(
    "template",
    [
        "account_verify",
        "account_reset",
        "account_exists",
        "account_password_changed",
        "account_change_email",
        "account_email_changed",
    ],
)
def test_every_account_email_in_french_and_english(app, template):
    from newsletter.mail.render import render_email

    context = {
        "code": "123456",
        "verify_url": "https://x/v",
        "reset_url": "https://x/r",
        "login_url": "https://x/l",
        "confirm_url": "https://x/c",
        "new_email": "new@example.org",
        "hours": 24,
        "minutes": 10,
    }
    french = render_email(template, "fr", **context)
    english = render_email(template, "en", **context)
    assert french.subject and english.subject and french.subject != english.subject
    assert french.text != english.text and french.html != english.html
    for rendered in (french, english):
        assert "{{" not in rendered.text and "{%" not in rendered.html
    # No English sentence is left untranslated in the French version.
    english_lines = {line.strip() for line in english.text.splitlines() if len(line.strip()) > 20}
    french_lines = {line.strip() for line in french.text.splitlines()}
    assert not {line for line in english_lines & french_lines if not line.startswith("http")}


def test_unused_codes_table_rows_are_per_purpose(app, client, mailbox, run_worker):
    """A reset code cannot verify an address, and a verification code cannot reset."""
    register(client)
    run_worker()
    verify_code = code_in(mailbox.wait_for(1)[0])
    response = client.post(
        "/api/v1/account/password-reset/confirm",
        json={"email": EMAIL, "code": verify_code, "password": OTHER_STRONG_PASSWORD},
    )
    assert response.status_code == 400
    with app.app_context():
        user_id = user_by_email(EMAIL).id
        [row] = codes_of(user_id, codes.VERIFY_EMAIL)
        assert row.used_at is None
    assert verify(client, verify_code).status_code == 303


def test_staff_only_routes_refuse_everyone_else(app, runner):
    from newsletter.web.auth import staff_required

    app.add_url_rule(
        "/test-staff-only", "test_staff_only", staff_required(lambda: "staff only page")
    )
    anonymous = app.test_client()
    response = anonymous.get("/test-staff-only")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/login?next=")
    assert (
        anonymous.get("/test-staff-only", headers={"Accept": "application/json"}).status_code == 401
    )

    member = logged_in(app, "member@example.org")
    assert member.get("/test-staff-only").status_code == 403

    make_user(app, "chief@example.org", staff=True)
    chief = app.test_client()
    assert login(chief, "chief@example.org", STRONG_PASSWORD).status_code == 303
    assert chief.get("/test-staff-only").get_data(as_text=True) == "staff only page"

    token = runner.invoke(args=["staff", "token", "chief@example.org"]).output.strip()
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/test-staff-only", headers=bearer).status_code == 200
    runner.invoke(args=["staff", "revoke", "chief@example.org"])
    assert app.test_client().get("/test-staff-only", headers=bearer).status_code == 401


def test_each_code_email_names_its_lifetime_and_links_to_its_own_page(app, mailbox, run_worker):
    """The verification, reset and change-of-address emails as they arrive: each to the right
    address, with its code, a link to its own page and the lifetime its template words."""
    from newsletter.delivery.accounts import (
        send_change_email_code,
        send_reset_code,
        send_verification_code,
    )
    from newsletter.domain.addresses import normalise_address

    user_id = make_user(app, EMAIL, verified=False)
    with app.test_request_context():
        user = db.session.get(User, user_id)
        assert send_verification_code(user)
        assert send_reset_code(user, next_url="/downloads/press-kit")
        assert send_change_email_code(user, normalise_address("new-home@example.org"))
        db.session.commit()
    run_worker()
    pages = {
        "verify": "/account/verify/",
        "reset": "/account/reset/confirm?token=",
        "change": "/account/email/confirm/",
    }
    links = {}
    emails = {}
    for message in mailbox.wait_for(3):
        for kind, page in pages.items():
            found = [url for url in message.links() if path_of(url).startswith(page)]
            if found:
                links[kind], emails[kind] = found[0], message
    assert set(emails) == set(pages), [m.links() for m in mailbox.messages]
    verify, reset, change = emails["verify"], emails["reset"], emails["change"]
    assert verify.to == reset.to == EMAIL and change.to == "new-home@example.org"
    assert "valid for 24 hours" in verify.text
    assert "valid for 10 minutes" in reset.text
    assert "valid for 24 hours" in change.text
    assert parse_qs(urlsplit(links["reset"]).query)["next"] == ["/downloads/press-kit"]
    for message in (verify, reset, change):
        assert re.search(r"^\s+\d{6}\s*$", message.text, re.MULTILINE)


ERRORS_BESIDE = ["current-password-error", "email-password-error", "delete-password-error"]


@pytest.mark.parametrize(
    ("action", "data", "field", "shown_at"),
    [
        (
            "/account/password",
            {"new_password": OTHER_STRONG_PASSWORD},
            "current_password",
            "current-password-error",
        ),
        ("/account/email", {"new_email": "new@example.org"}, "password", "email-password-error"),
        ("/account/delete", {}, "delete_password", "delete-password-error"),
    ],
)
def test_a_change_needing_the_password_refuses_a_wrong_one_beside_its_own_form(
    app, action, data, field, shown_at
):
    """Each change that asks for the current password says which field was wrong, on the
    page beside that form only, and changes nothing: same password, the account still there,
    no email queued."""
    client = logged_in(app)
    with app.app_context():
        before = user_by_email(EMAIL).password_hash
    password_field = "current_password" if field == "current_password" else "password"
    wrong = {**data, password_field: "Wrong-Password-1!"}
    response = post_form(client, "/account", action, wrong, headers={"Accept": "application/json"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "wrong_password"
    assert list(error["fields"]) == [field]
    page = post_form(client, "/account", action, wrong)
    assert page.status_code == 400
    shown = [i for i in ERRORS_BESIDE if f'id="{i}" class="field-error"' in page.get_data(True)]
    assert shown == [shown_at]
    with app.app_context():
        assert user_by_email(EMAIL).password_hash == before
    assert outbox_kinds(app) == []
