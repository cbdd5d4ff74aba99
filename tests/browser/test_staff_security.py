"""Staff roles and two-factor login in a real browser (issue 14): an editor is shown neither
sending nor exporting and is refused when trying; an owner turns on TOTP from the QR code's
key, logs in with a code, and with a recovery code once (not twice)."""

from __future__ import annotations

import time

import pyotp
import segno
from sqlalchemy import select

from newsletter.domain.accounts import create_staff
from newsletter.extensions import db
from newsletter.models import AuditEntry, Digest
from tests.support.digests import add_subscribers

PASSWORD = "Correct-horse-battery-42!"


def seed(app, email: str, role: str) -> None:
    with app.app_context():
        create_staff(email, PASSWORD, language="en", role=role)
        add_subscribers(3, language="en")
        db.session.commit()


def submit_login(page, email: str, next_path: str = "/admin/") -> None:
    page.goto(next_path)
    assert "/account/login" in page.url
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()


def log_out(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").first.click()
    assert "/account/login" in page.url


def test_an_editor_cannot_send_or_export(visit, app):
    seed(app, "editor@example.org", "editor")
    page = visit.new_page(locale="en-GB")
    submit_login(page, "editor@example.org")
    assert page.url.endswith("/admin/")
    nav = page.locator("nav.console-nav")
    assert nav.get_by_role("link", name="Releases").is_visible()
    assert nav.get_by_role("link", name="Staff").count() == 0
    assert nav.get_by_role("link", name="Audit log").count() == 0

    nav.get_by_role("link", name="Subscribers").click()
    assert page.locator("h1").inner_text() == "Subscribers"
    assert page.get_by_role("link", name="Export these subscribers (CSV)").count() == 0
    assert page.get_by_role("link", name="Import a CSV file").count() == 0
    visit.screenshot(page, "console-subscribers-editor-en")

    nav.get_by_role("link", name="Digests").click()
    assert page.get_by_role("button", name="Schedule the digest").count() == 0
    assert page.get_by_role("button", name="Save the recurring digest").count() == 0
    visit.screenshot(page, "console-digests-editor-en")

    # Typing the addresses does not help: the server refuses, and says why.
    response = page.goto("/admin/subscribers/export.csv")
    assert response.status == 403
    assert "Your role does not allow this" in page.locator("main").inner_text()
    # A genuine form post (the session's own CSRF token, from the page's log-out form), so
    # the refusal is the role's, not the CSRF check's.
    page.goto("/admin/digests")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    response = page.request.post(
        "/admin/digests",
        form={"language": "en", "when": "now", "csrf_token": token},
        headers={"Referer": page.url},
    )
    assert response.status == 403
    assert "Your role does not allow this" in response.text()
    with app.app_context():
        assert db.session.scalar(select(Digest)) is None
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert "subscribers.export" not in actions and "digest.create" not in actions


def test_an_owner_enrols_totp_and_logs_in_with_a_code_then_a_recovery_code_once(visit, app):
    seed(app, "owner@example.org", "owner")
    page = visit.new_page(locale="en-GB")
    submit_login(page, "owner@example.org")
    assert page.url.endswith("/admin/")
    page.get_by_role("link", name="Two-factor login").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    # The QR code drawn on the page carries exactly this key (what a phone would scan).
    uri = pyotp.TOTP(secret).provisioning_uri(name="owner@example.org", issuer_name="Newsletter")
    expected_svg = segno.make(uri, error="m").svg_inline(scale=5, border=2, title="QR code")
    drawn = page.locator("#totp-qr svg path").get_attribute("d")
    assert drawn and f'd="{drawn}"' in expected_svg
    assert page.locator("#totp-qr svg").is_visible()
    visit.screenshot(page, "console-2fa-enrol-en")
    page.locator("#code").fill(pyotp.TOTP(secret).now())
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on two-factor login").click()
    codes = [item.inner_text().strip() for item in page.locator("#recovery-codes code").all()]
    assert len(codes) == 10
    visit.screenshot(page, "console-2fa-recovery-codes-en")
    log_out(page)

    # Password, then a code from the app (the next time step: the enrolment's is spent).
    submit_login(page, "owner@example.org")
    assert "/account/2fa" in page.url
    page.goto("/admin/subscribers")
    assert "/account/2fa" in page.url  # nothing of the console before the code
    page.locator("#code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    assert page.url.endswith("/admin/subscribers"), page.url
    assert page.locator("h1").inner_text() == "Subscribers"
    log_out(page)

    # A recovery code, once.
    submit_login(page, "owner@example.org")
    page.locator("#code").fill(codes[0])
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    assert page.url.endswith("/admin/")
    log_out(page)
    submit_login(page, "owner@example.org")
    page.locator("#code").fill(codes[0])
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    assert "/account/2fa" in page.url
    assert "This code is not valid" in page.locator("#code-error").inner_text()
    visit.screenshot(page, "console-2fa-used-recovery-code-en")
    page.goto("/admin/")
    assert "/account/2fa" in page.url
    with app.app_context():
        actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions.count("staff.2fa_passed") == 2
    assert actions.count("staff.2fa_failed") == 1
    assert actions.count("staff.2fa_enrolled") == 1
