"""A staff member, in a real browser: logs in, writes a release, schedules a digest a minute
ahead and watches it go out; a subscriber leaves from the link in that digest."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from newsletter.domain.accounts import create_staff
from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus, Release, Subscriber, SubscriberStatus, utcnow
from tests.support.browser import CONTRAST_SCRIPT, OVERFLOW_SCRIPT, UNLABELLED_SCRIPT

STAFF_EMAIL = "editor@example.org"
STAFF_PASSWORD = "Correct-horse-battery-42!"
RECIPIENTS = 40


def seed(app) -> None:
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD, language="en")
        now = utcnow()
        for index in range(RECIPIENTS):
            db.session.add(
                Subscriber(
                    email=f"reader{index:02d}@example.org",
                    email_key=f"reader{index:02d}@example.org",
                    language="en",
                    status=SubscriberStatus.CONFIRMED,
                    consent_at=now - timedelta(days=index),
                    confirmed_at=now - timedelta(days=index),
                    consent_source="form",
                    hard_bounces=0,
                )
            )
        db.session.add(
            Subscriber(
                email="lecteur@example.org",
                email_key="lecteur@example.org",
                language="fr",
                status=SubscriberStatus.UNSUBSCRIBED,
                confirmed_at=now - timedelta(days=40),
                unsubscribed_at=now - timedelta(days=3),
                hard_bounces=0,
            )
        )
        db.session.commit()


def press(page, button: str) -> None:
    """Click the button of a form and wait for the page its answer loads."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def log_in(page, next_path: str = "/admin/") -> None:
    page.goto(next_path)
    assert "/account/login" in page.url  # the console sends strangers to the login page
    page.locator("#email").fill(STAFF_EMAIL)
    page.locator("#password").fill(STAFF_PASSWORD)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    assert page.url.endswith(next_path), (page.url, page.locator("main").inner_text())


def check_page(page) -> None:
    assert page.evaluate(UNLABELLED_SCRIPT) == []
    assert page.evaluate(CONTRAST_SCRIPT) == []
    assert page.evaluate(OVERFLOW_SCRIPT) <= 0


@pytest.mark.slow
def test_staff_writes_a_release_and_watches_a_digest_go_out(visit, app, mailbox):
    seed(app)
    page = visit.new_page(locale="en-GB")
    log_in(page)
    assert page.locator("h1").inner_text() == "Dashboard"
    check_page(page)
    visit.screenshot(page, "console-dashboard-en")

    # A release, previewed (sanitised) then saved.
    page.get_by_role("link", name="Releases").click()
    page.get_by_role("link", name="New release").click()
    page.locator("#title").fill("Budget 2026 presented to the press")
    page.locator("#dateline").fill("Brussels")
    page.locator("#summary").fill("The main lines of the budget.")
    page.locator("#body").fill(
        "<p>The <strong>budget</strong> is balanced.</p><script>alert('x')</script>"
    )
    page.locator("#language").select_option("en")
    press(page, "Preview")
    preview = page.locator(".release-body")
    assert preview.inner_html().strip() == "<p>The <strong>budget</strong> is balanced.</p>"
    check_page(page)
    visit.screenshot(page, "console-release-preview-en")
    press(page, "Save the release")
    assert page.get_by_text("The release is saved.").is_visible()
    with app.app_context():
        release = db.session.scalar(select(Release))
        assert release.title == "Budget 2026 presented to the press"
        assert "<script" not in release.body_html

    # A digest one minute ahead, typed in Brussels time.
    page.get_by_role("link", name="Digests").click()
    check_page(page)
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    local = send_at.astimezone(ZoneInfo("Europe/Brussels"))
    page.locator("#language").select_option("en")
    page.get_by_label("At a given time").check()
    page.locator("#send_at").fill(local.strftime("%Y-%m-%dT%H:%M:%S"))
    page.locator("#timezone").fill("Europe/Brussels")
    visit.screenshot(page, "console-digests-en")
    press(page, "Schedule the digest")
    assert page.get_by_text("The digest is scheduled.").is_visible()
    with app.app_context():
        digest = db.session.scalar(select(Digest))
        assert digest.send_at == send_at.replace(tzinfo=None)
        digest_id = digest.id
    summary = page.locator("#digest-summary")
    assert summary.get_attribute("data-status") == "scheduled"
    check_page(page)
    visit.screenshot(page, "console-digest-scheduled-en")

    # The preview, and the same page without JavaScript (it reloads itself instead).
    preview_page = visit.new_page(locale="en-GB")
    log_in(preview_page, f"/admin/digests/{digest_id}/preview")
    assert "Budget 2026 presented to the press" in preview_page.locator(".email-text").inner_text()
    visit.screenshot(preview_page, "console-digest-preview-en")
    no_script = visit.new_page(locale="en-GB", javascript=False)
    log_in(no_script, f"/admin/digests/{digest_id}")

    # Watch the bar: the page is never reloaded, the script updates it.
    page.evaluate("() => { window.notReloaded = true; }")
    bar = page.locator("#digest-progress")
    seen: list[tuple[str, str | None, str | None]] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        state = (
            summary.get_attribute("data-status"),
            bar.get_attribute("value"),
            bar.get_attribute("max"),
        )
        if not seen or seen[-1] != state:
            seen.append(state)
            if state[0] == "sending":
                visit.screenshot(page, "console-digest-sending-en")
        if state[0] == "sent":
            break
        time.sleep(0.1)
    assert seen[-1][0] == "sent", (seen, visit.live.log("worker"))
    assert page.evaluate("() => window.notReloaded === true")
    assert page.evaluate(
        "() => [document.getElementById('digest-progress').value,"
        " document.getElementById('digest-progress').max]"
    ) == [RECIPIENTS, RECIPIENTS]
    assert summary.inner_text() == f"Done: {RECIPIENTS} sent, 0 failed, out of {RECIPIENTS}."
    # It was sent at its time, not before.
    with app.app_context():
        digest = db.session.get(Digest, digest_id)
        assert digest.status == DigestStatus.SENT
        assert digest.started_at >= send_at.replace(tzinfo=None) - timedelta(seconds=1)
    visit.screenshot(page, "console-digest-done-en")
    print("progress states seen:", seen)

    # Without JavaScript, the refreshing page reached the same end.
    no_script.wait_for_selector("#digest-summary[data-status=sent]", timeout=30_000)

    digests = mailbox.wait_for(RECIPIENTS, timeout=30)
    reader = [m for m in digests if m.to == "reader07@example.org"]
    assert len(reader) == 1
    assert "Budget 2026 presented to the press" in reader[0].text
    assert mailbox.to("lecteur@example.org") == []  # left before: never written to

    # The reader leaves from the link in the digest.
    unsubscribe_url = reader[0].header("List-Unsubscribe").split(",")[0].strip(" <>")
    assert unsubscribe_url in reader[0].text
    visitor = visit.new_page(locale="en-GB")
    visitor.goto(unsubscribe_url)
    press(visitor, "Unsubscribe")
    assert visitor.locator("h1").inner_text() == "You are unsubscribed"
    with app.app_context():
        row = db.session.scalar(
            select(Subscriber).where(Subscriber.email_key == "reader07@example.org")
        )
        assert row.status == SubscriberStatus.UNSUBSCRIBED

    # The history and the dashboard show the counts.
    page.goto("/admin/digests")
    assert page.locator("table tbody tr").first.inner_text().split("\t")[-3:] == [
        str(RECIPIENTS),
        str(RECIPIENTS),
        "0",
    ]
    page.goto("/admin/")
    check_page(page)
    visit.screenshot(page, "console-dashboard-after-en")


def test_console_pages_in_french_and_on_a_phone(visit, app):
    seed(app)
    page = visit.new_page(locale="fr-BE")
    log_in(page)
    # The account's language is English, but the visitor's choice wins when made.
    page.goto("/admin/?lang=fr")
    assert page.get_attribute("html", "lang") == "fr"
    for name, path in [
        ("dashboard", "/admin/"),
        ("subscribers", "/admin/subscribers"),
        ("import", "/admin/subscribers/import"),
        ("releases", "/admin/releases"),
        ("new-release", "/admin/releases/new"),
        ("digests", "/admin/digests"),
    ]:
        page.goto(path)
        assert page.get_attribute("html", "lang") == "fr"
        check_page(page)
        visit.screenshot(page, f"console-{name}-fr")

    # A CSV import in the browser: preview, then the report.
    page.goto("/admin/subscribers/import")
    page.locator("#file").set_input_files(
        files=[
            {
                "name": "abonnes.csv",
                "mimeType": "text/csv",
                "buffer": (
                    "email;name;language\r\nnouvelle@example.org;Zoé;fr\r\n"
                    "pas-une-adresse;X;fr\r\nreader01@example.org;;en\r\n"
                ).encode(),
            }
        ]
    )
    press(page, "Prévisualiser l’import")
    report = page.locator("table.import-report").inner_text()
    assert "Pas de consentement enregistré" in report
    assert "Adresse e-mail non valide" in report
    assert "Déjà dans la liste (confirmé)" in report
    check_page(page)
    visit.screenshot(page, "console-import-preview-fr")
    press(page, "Importer 1 adresse")
    assert (
        "Import terminé : 0 importés comme confirmés, 1 importés en attente"
        in page.locator("main").inner_text()
    )
    visit.screenshot(page, "console-import-done-fr")
    with app.app_context():
        row = db.session.scalar(
            select(Subscriber).where(Subscriber.email_key == "nouvelle@example.org")
        )
        assert (row.status, row.name, row.consent_source) == ("pending", "Zoé", "import")

    phone = visit.new_page(locale="en-GB", phone=True)
    log_in(phone)
    for name, path in [
        ("dashboard", "/admin/"),
        ("subscribers", "/admin/subscribers"),
        ("digests", "/admin/digests"),
    ]:
        phone.goto(path + "?lang=en")
        check_page(phone)
        visit.screenshot(phone, f"phone-console-{name}-en")
