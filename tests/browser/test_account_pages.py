"""A member who forgot their password, in a real browser: reset by emailed code, ask for a new
code, and land back on the page they started from."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from newsletter.domain.accounts import mark_email_verified, register_account
from newsletter.domain.addresses import normalise_address
from newsletter.extensions import db
from newsletter.models import OneTimeCode, User
from tests.support.browser import check_page

EMAIL = "member@example.org"
OLD_PASSWORD = "Old-password-for-tests-42!"
NEW_PASSWORD = "New-password-for-tests-77?"
CODE_RE = re.compile(r"^\s+(\d{3}\s?\d{3})\s*$", re.M)


def register(app) -> None:
    with app.app_context():
        registration = register_account(
            normalise_address(EMAIL), OLD_PASSWORD, language="en", policy="site"
        )
        mark_email_verified(registration.user)
        db.session.commit()


def code_in(message) -> str:
    match = CODE_RE.search(message.text)
    assert match, message.text
    return match.group(1).replace(" ", "")


def test_forgotten_password_reset_with_a_new_code_returns_to_the_start(visit, app, mailbox):
    register(app)
    page = visit.new_page(locale="en-GB")
    page.goto("/account")
    assert "/account/login" in page.url
    visit.screenshot(page, "login-en")
    check_page(page)

    with page.expect_navigation():
        page.get_by_role("link", name="Forgot your password?").click()
    check_page(page)
    visit.screenshot(page, "reset-request-en")
    page.locator("#email").fill(EMAIL)
    with page.expect_navigation():
        page.get_by_role("button", name="Send me a code").click()
    assert page.locator("h1").inner_text() == "Choose a new password"
    check_page(page)
    visit.screenshot(page, "reset-confirm-en")
    first_code = code_in(mailbox.wait_for(1)[0])

    # A minute later (the cooldown between codes), the member asks for a new one.
    with app.app_context():
        db.session.execute(
            update(OneTimeCode).values(created_at=OneTimeCode.created_at - timedelta(seconds=61))
        )
        db.session.commit()
    with page.expect_navigation():
        page.get_by_role("button", name="Send a new code").click()
    assert page.get_by_text("only the newest code works").is_visible()
    messages = mailbox.wait_for(2)
    assert [m.to for m in messages] == [EMAIL, EMAIL]
    second_code = code_in(messages[1])
    assert second_code != first_code

    # The replaced code no longer works.
    page.locator("#code").fill(first_code)
    page.locator("#password").fill(NEW_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Change my password").click()
    assert page.locator("#code").get_attribute("aria-invalid") == "true"
    assert page.locator("#code-error").is_visible()
    visit.screenshot(page, "reset-wrong-code-en")

    page.locator("#code").fill(second_code)
    page.locator("#password").fill(NEW_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Change my password").click()
    assert "/account/login" in page.url
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(NEW_PASSWORD)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    # Back where the member started.
    assert page.url == visit.live.url + "/account"
    check_page(page)
    visit.screenshot(page, "account-en")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email_key == EMAIL))
        assert user.session_version == 2  # other sessions ended with the change


def test_account_pages_in_french(visit, app):
    visit.tour(
        visit.new_page(locale="fr-FR"),
        "fr",
        [
            ("login", "/account/login"),
            ("register", "/account/register"),
            ("reset-request", "/account/reset"),
            ("reset-confirm", "/account/reset/confirm"),
        ],
    )
    phone = visit.new_page(locale="en-GB", phone=True)
    phone.goto("/account/register")
    check_page(phone)
    visit.screenshot(phone, "phone-register-en")
