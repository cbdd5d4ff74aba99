"""Password reset by emailed code, end to end through a real SMTP server."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from newsletter.config import CODE_MAX_ATTEMPTS, CODES_PER_ADDRESS_PER_HOUR
from newsletter.domain import codes
from newsletter.extensions import db
from newsletter.models import OneTimeCode, OutboxMessage, User
from tests.support import accounts

EMAIL = "editor@example.org"


def ask_code(client, email=EMAIL, next_url=None, **kwargs):
    data = {"email": email}
    if next_url is not None:
        data["next"] = next_url
    return accounts.post_form(client, "/account/reset", "/account/reset", data, **kwargs)


def resend(client, email=EMAIL, next_url=None):
    data = {"email": email}
    if next_url is not None:
        data["next"] = next_url
    return accounts.post_form(client, "/account/reset/confirm", "/account/reset/resend", data)


def confirm(client, code, password=accounts.OTHER_STRONG_PASSWORD, email=EMAIL, next_url=None):
    data = {"email": email, "code": code, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return accounts.post_form(client, "/account/reset/confirm", "/account/reset/confirm", data)


def test_reset_by_code_resend_old_code_refused_new_works_sessions_end_and_next_kept(
    app, client, mailbox, run_worker
):
    user_id = accounts.make_user(app, EMAIL)
    accounts.speak_english(client)
    # Another device stays logged in: it must be logged out by the reset.
    other_device = app.test_client()
    assert accounts.login(other_device, EMAIL, accounts.STRONG_PASSWORD).status_code == 303
    assert other_device.get("/account").status_code == 200

    response = ask_code(client, next_url="/downloads/press-kit?lang=en")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account/reset/confirm")
    run_worker()
    [first] = mailbox.wait_for(1)
    assert first.to == EMAIL
    first_code = accounts.code_in(first)

    # "Didn't receive a code? Send a new code" — after the cooldown.
    accounts.age_codes(app, user_id, codes.RESET_PASSWORD, 61)
    response = resend(client, next_url="/downloads/press-kit?lang=en")
    assert response.status_code == 303
    run_worker()
    second = mailbox.wait_for(2)[1]
    second_code = accounts.code_in(second)
    with app.app_context():
        rows = accounts.codes_of(user_id, codes.RESET_PASSWORD)
        assert len(rows) == 2 and rows[0].revoked_at is not None and rows[1].revoked_at is None

    if first_code != second_code:  # one chance in a million they coincide
        response = confirm(client, first_code, next_url="/downloads/press-kit?lang=en")
        assert response.status_code == 400
        assert "wrong or has expired" in response.get_data(as_text=True)

    response = confirm(client, second_code, next_url="/downloads/press-kit?lang=en")
    assert response.status_code == 303
    # Back to log in, then on to the page they were on.
    assert response.headers["Location"] == "/account/login?next=/downloads/press-kit?lang%3Den"

    # The other device's session ended with the password change.
    response = other_device.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/login")

    # The old password is dead, the new one logs in and goes to `next`.
    assert accounts.login(client, EMAIL, accounts.STRONG_PASSWORD).status_code == 401
    response = accounts.login(
        client, EMAIL, accounts.OTHER_STRONG_PASSWORD, next_url="/downloads/press-kit?lang=en"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/downloads/press-kit?lang=en"

    run_worker()
    changed = mailbox.wait_for(3)[2]
    assert changed.to == EMAIL
    assert changed.header("Subject") == "Your password was changed"


def test_same_code_twice_is_refused(app, client, mailbox, run_worker):
    accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    assert confirm(client, code).status_code == 303
    response = confirm(client, code, password="Another#Strong-Pass-55")
    assert response.status_code == 400
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email_key == EMAIL))
        from newsletter.domain.passwords import verify_password

        assert verify_password(user.password_hash, accounts.OTHER_STRONG_PASSWORD).matches


def test_sixth_try_fails_even_with_the_right_code(app, client, mailbox, run_worker):
    user_id = accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(CODE_MAX_ATTEMPTS):
        assert confirm(client, wrong).status_code == 400
    response = confirm(client, code)
    assert response.status_code == 400
    with app.app_context():
        [row] = accounts.codes_of(user_id, codes.RESET_PASSWORD)
        assert row.attempts == CODE_MAX_ATTEMPTS and row.revoked_at is not None
        assert row.used_at is None
    assert accounts.login(client, EMAIL, accounts.STRONG_PASSWORD).status_code == 303


def test_fifth_try_with_the_right_code_still_works(app, client, mailbox, run_worker):
    accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(CODE_MAX_ATTEMPTS - 1):
        assert confirm(client, wrong).status_code == 400
    assert confirm(client, code).status_code == 303


def test_expired_code_is_refused(app, client, mailbox, run_worker):
    user_id = accounts.make_user(app, EMAIL)
    accounts.speak_english(client)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    accounts.age_codes(app, user_id, codes.RESET_PASSWORD, 10 * 60 + 1)
    response = confirm(client, code)
    assert response.status_code == 400
    assert "wrong or has expired" in response.get_data(as_text=True)


def test_code_is_stored_only_as_a_keyed_hash(app, client, mailbox, run_worker):
    user_id = accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    with app.app_context():
        [row] = accounts.codes_of(user_id, codes.RESET_PASSWORD)
        assert code not in row.code_hash
        import hashlib

        assert row.code_hash != hashlib.sha256(code.encode()).hexdigest()
        assert row.code_hash == codes.code_hash(
            app.config["SECRET_KEY"], "reset_password", user_id, code
        )
        assert (row.expires_at - row.created_at).total_seconds() == 600


def test_resend_cooldown_and_hourly_cap(app, client, mailbox, run_worker):
    user_id = accounts.make_user(app, EMAIL)
    ask_code(client)
    # Within the cooldown: the same answer, but no second email.
    response = resend(client)
    assert response.status_code == 303
    with app.app_context():
        assert len(accounts.codes_of(user_id, codes.RESET_PASSWORD)) == 1
    for _ in range(CODES_PER_ADDRESS_PER_HOUR - 1):
        accounts.age_codes(app, user_id, codes.RESET_PASSWORD, 61)
        assert resend(client).status_code == 303
    with app.app_context():
        assert len(accounts.codes_of(user_id, codes.RESET_PASSWORD)) == CODES_PER_ADDRESS_PER_HOUR
    # Past the cooldown but at the hourly cap: still nothing.
    accounts.age_codes(app, user_id, codes.RESET_PASSWORD, 61)
    assert resend(client).status_code == 303
    with app.app_context():
        assert len(accounts.codes_of(user_id, codes.RESET_PASSWORD)) == CODES_PER_ADDRESS_PER_HOUR
    run_worker()
    assert len(mailbox.wait_for(CODES_PER_ADDRESS_PER_HOUR)) == CODES_PER_ADDRESS_PER_HOUR
    # An hour later, codes flow again.
    accounts.age_codes(app, user_id, codes.RESET_PASSWORD, 3600)
    resend(client)
    with app.app_context():
        assert (
            len(accounts.codes_of(user_id, codes.RESET_PASSWORD)) == CODES_PER_ADDRESS_PER_HOUR + 1
        )


def test_cooldown_holds_with_ip_limits_off(make_app):
    """Per-address caps on emails stay on when per-IP request limits are turned off."""
    application = make_app(RATELIMIT_ENABLED=False)
    user_id = accounts.make_user(application, EMAIL)
    client = application.test_client()
    for _ in range(30):
        response = client.post("/api/v1/account/password-reset", json={"email": EMAIL})
        assert response.status_code == 202
    with application.app_context():
        assert len(accounts.codes_of(user_id, codes.RESET_PASSWORD)) == 1


def test_registered_and_unknown_addresses_get_the_same_answer(app, mailbox, run_worker):
    accounts.make_user(app, EMAIL)
    answers = []
    for email in (EMAIL, "nobody@example.org"):
        client = app.test_client()
        page = ask_code(client, email=email, next_url="/x")
        api = client.post("/api/v1/account/password-reset", json={"email": email})
        follow = client.get(page.headers["Location"])
        resent = resend(client, email=email)
        wrong = confirm(client, "123456", email=email)
        api_wrong = client.post(
            "/api/v1/account/password-reset/confirm",
            json={"email": email, "code": "123456", "password": accounts.OTHER_STRONG_PASSWORD},
        )
        answers.append(
            [
                (r.status_code, r.headers.get("Location"), strip_tokens(r.get_data(as_text=True)))
                for r in (page, api, follow, resent, wrong, api_wrong)
            ]
        )
    registered, unknown = answers
    # The reset-confirm page pre-fills the address typed, which differs; nothing else may.
    for (status_a, location_a, body_a), (status_b, location_b, body_b) in zip(
        registered, unknown, strict=True
    ):
        assert status_a == status_b
        assert location_a == location_b
        assert body_a.replace(EMAIL, "ADDRESS") == body_b.replace("nobody@example.org", "ADDRESS")
    assert registered[1][0] == 202
    run_worker()
    assert {m.to for m in mailbox.wait_for(1)} == {EMAIL}


def strip_tokens(html: str) -> str:
    import re

    return re.sub(r'name="csrf_token" value="[^"]+"', "", html)


def test_api_reset_and_confirm(app, client, mailbox, run_worker):
    accounts.make_user(app, EMAIL, language="fr")
    response = client.post("/api/v1/account/password-reset", json={"email": EMAIL})
    assert response.status_code == 202
    assert response.get_json() == {"status": "pending"}
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.header("Content-Language") == "fr"
    code = accounts.code_in(message)

    response = client.post(
        "/api/v1/account/password-reset/confirm",
        json={"email": EMAIL, "code": code, "password": "short"},
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "weak_password"
    assert "min_length" in error["rules"]
    assert "password" in error["fields"]

    # The weak password did not spend the code.
    response = client.post(
        "/api/v1/account/password-reset/confirm",
        json={"email": EMAIL, "code": code, "password": accounts.OTHER_STRONG_PASSWORD},
    )
    assert response.status_code == 200
    assert response.get_json() == {"status": "password_changed"}

    response = client.post(
        "/api/v1/account/password-reset/confirm",
        json={"email": EMAIL, "code": code, "password": accounts.OTHER_STRONG_PASSWORD},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_code"


RESET = "/api/v1/account/password-reset"
CONFIRM = "/api/v1/account/password-reset/confirm"


@pytest.mark.parametrize(
    ("route", "payload"),
    [
        (route, payload)
        for route in (RESET, CONFIRM)
        for payload in (
            None,
            [],
            "a@b.example",
            {"email": 12},
            {"email": ["a@b.example"]},
            {"email": "not an address"},
            {"email": "x" * 5000 + "@example.org"},
            {"email": "a@b.example\r\nBcc: victim@example.org"},
        )
    ]
    + [
        (CONFIRM, {"email": "a@b.example", "code": ["1"], "password": {"x": 1}}),
        (CONFIRM, {"email": "a@b.example", "code": "12345678901234567890", "password": "x"}),
        (CONFIRM, {"email": "a@b.example", "code": "123456", "password": "A1!a" * 1000}),
        (CONFIRM, {"email": "a@b.example", "code": None, "password": None}),
    ],
)
def test_hostile_api_bodies_get_clear_4xx(app, client, route, payload):
    accounts.make_user(app, "a@b.example")
    response = client.post(route, json=payload)
    assert 400 <= response.status_code < 500, (route, payload, response.status_code)
    assert "error" in response.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_wrong_content_types_are_refused(app, client):
    response = client.post("/api/v1/account/password-reset", data="email=a@b.example")
    assert response.status_code == 415
    response = client.post(
        "/api/v1/account/password-reset", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "hostile",
    [
        "//evil.example",
        "https://evil.example",
        "http://evil.example/path",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        " //evil.example",
        "///evil.example",
        "evil.example",
        "data:text/html,hi",
    ],
)
def test_next_never_leaves_the_site(app, client, mailbox, run_worker, hostile):
    accounts.make_user(app, EMAIL)
    response = ask_code(client, next_url=hostile)
    assert response.status_code == 303
    assert "evil" not in response.headers["Location"]
    run_worker()
    message = mailbox.wait_for(1)[0]
    assert "evil" not in message.text and "javascript" not in message.text
    response = confirm(client, accounts.code_in(message), next_url=hostile)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login"
    response = accounts.login(client, EMAIL, accounts.OTHER_STRONG_PASSWORD, next_url=hostile)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"
    # Nor through the query string of the login page.
    client.post("/account/logout", data={"csrf_token": accounts.csrf_token(client, "/account")})
    page = client.get("/account/login", query_string={"next": hostile})
    body = page.get_data(as_text=True)
    assert 'name="next"' not in body
    # Only the language links keep the page's query; nothing else on the page may carry it.
    language_nav = re.search(r'<nav aria-label="[^"]*Lang[^"]*".*?</nav>', body, re.S)
    assert language_nav is not None
    assert "evil.example" not in body.replace(language_nav.group(0), "")


def test_host_header_never_reaches_an_emailed_link(app, client, mailbox, run_worker):
    accounts.make_user(app, EMAIL)
    evil = app.test_client()
    response = evil.post(
        "/api/v1/account/password-reset",
        json={"email": EMAIL},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 202
    run_worker()
    [message] = mailbox.wait_for(1)
    assert "evil.example" not in message.text and "evil.example" not in message.html
    [link] = message.links()
    assert link.startswith("https://news.example.org/account/reset/confirm?token=")

    # Nor into the verification email of a registration.
    response = evil.post(
        "/api/v1/account/register",
        json={"email": "fresh@example.org", "password": accounts.STRONG_PASSWORD},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 202
    run_worker()
    verification = mailbox.wait_for(2)[1]
    assert "evil.example" not in verification.text and "evil.example" not in verification.html
    [link] = verification.links()
    assert link.startswith("https://news.example.org/account/verify/")


def test_emailed_link_sets_a_password_once(app, client, mailbox, run_worker):
    accounts.make_user(app, EMAIL)
    ask_code(client, next_url="/releases")
    run_worker()
    message = mailbox.wait_for(1)[0]
    [link] = message.links()
    assert "next=%2Freleases" in link or "next=/releases" in link
    page = client.get(accounts.path_of(link))
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    body = page.get_data(as_text=True)
    assert 'name="token"' in body and 'name="code"' not in body
    token = accounts.path_of(link).split("token=")[1].split("&")[0]
    data = {"token": token, "password": accounts.OTHER_STRONG_PASSWORD, "next": "/releases"}
    response = accounts.post_form(client, accounts.path_of(link), "/account/reset/confirm", data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/login?next=/releases"
    # The link is spent, and it died with the old password anyway.
    assert client.get(accounts.path_of(link)).status_code == 400
    response = accounts.post_form(client, "/account/reset/confirm", "/account/reset/confirm", data)
    assert response.status_code == 400
    # The code it came with is spent too.
    assert confirm(client, accounts.code_in(message)).status_code == 400


def test_reset_link_dies_when_the_password_changes_another_way(app, client, mailbox, run_worker):
    user_id = accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    [link] = mailbox.wait_for(1)[0].links()
    with app.app_context():
        from newsletter.domain.passwords import hash_password

        user = db.session.get(User, user_id)
        user.password_hash = hash_password("Changed-Elsewhere-2024!")
        db.session.commit()
    assert client.get(accounts.path_of(link)).status_code == 400


def test_reset_pages_send_no_referrer(app, client):
    for page in ("/account/reset", "/account/reset/confirm", "/account/reset?next=/x"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["Referrer-Policy"] == "no-referrer"
    response = ask_code(client)
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_reset_forms_need_their_csrf_token(app, client):
    accounts.make_user(app, EMAIL)
    response = client.post("/account/reset", data={"email": EMAIL})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0
        assert db.session.scalar(select(func.count(OneTimeCode.id))) == 0


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "Your password reset code"), ("fr", "Votre code de réinitialisation")],
)
def test_reset_email_in_the_account_language(app, client, mailbox, run_worker, language, expected):
    accounts.make_user(app, EMAIL, language=language)
    ask_code(client)
    run_worker()
    [message] = mailbox.wait_for(1)
    assert message.header("Content-Language") == language
    assert message.header("Subject").startswith(expected)
    assert accounts.code_in(message) in message.text
    assert accounts.code_in(message) in message.html


def test_racing_requests_cannot_spend_one_code_twice(app, client, mailbox, run_worker):
    import threading

    accounts.make_user(app, EMAIL)
    ask_code(client)
    run_worker()
    code = accounts.code_in(mailbox.wait_for(1)[0])
    racers = 4
    barrier = threading.Barrier(racers)
    statuses: list[int] = []

    def attempt(number: int) -> None:
        racer = app.test_client()
        barrier.wait()
        response = racer.post(
            CONFIRM,
            json={"email": EMAIL, "code": code, "password": f"Racing-Password-{number}!x"},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [400] * (racers - 1)
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 2  # code + "changed"
