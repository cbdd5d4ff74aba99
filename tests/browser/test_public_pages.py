"""A visitor, in a real browser, against the real app and a real SMTP server."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.support.browser import (
    CONTRAST_SCRIPT,
    OVERFLOW_SCRIPT,
    UNLABELLED_SCRIPT,
    check_page,
)

FRENCH = {
    "subscribe_title": "S’abonner à la lettre d’information",
    "check_inbox": "Consultez votre boîte de réception",
    "confirmed": "Votre abonnement est confirmé",
    "unsubscribe_button": "Se désabonner",
    "unsubscribed": "Vous êtes désabonné",
}
ENGLISH = {
    "subscribe_title": "Subscribe to the newsletter",
    "check_inbox": "Check your inbox",
    "confirmed": "Your subscription is confirmed",
    "unsubscribe_button": "Unsubscribe",
    "unsubscribed": "You are unsubscribed",
}


def subscriber(app, email_key: str) -> Subscriber | None:
    with app.app_context():
        row = db.session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))
        if row is not None:
            db.session.expunge(row)
        return row


@pytest.mark.parametrize(
    ("locale", "words", "language"), [("fr-BE", FRENCH, "fr"), ("en-GB", ENGLISH, "en")]
)
def test_visitor_subscribes_confirms_from_the_email_and_unsubscribes(
    visit, app, mailbox, locale, words, language
):
    page = visit.new_page(locale=locale)
    page.goto("/")
    assert page.get_attribute("html", "lang") == language
    assert page.locator("h1").inner_text() == words["subscribe_title"]
    check_page(page, "fr", "en")
    visit.screenshot(page, f"subscribe-{language}")

    address = f"reader.{language}@example.org"
    page.locator("#email").fill(address)
    page.locator("#name").fill("Camille")
    with page.expect_navigation():
        page.locator("form.subscribe-form button[type=submit]").click()
    assert page.locator("h1").inner_text() == words["check_inbox"]
    visit.screenshot(page, f"subscribe-done-{language}")
    assert subscriber(app, address).status == SubscriberStatus.PENDING

    [confirmation] = mailbox.wait_for(1)
    assert confirmation.to == address
    assert confirmation.header("Content-Language") == language
    [link] = confirmation.links()
    assert link.startswith(visit.live.url + "/subscribe/confirm/")

    page.goto(link)
    # Mail scanners fetch links: the page only asks, one button confirms.
    assert subscriber(app, address).status == SubscriberStatus.PENDING
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()
    assert page.locator("h1").inner_text() == words["confirmed"]
    visit.screenshot(page, f"confirmed-{language}")
    row = subscriber(app, address)
    assert row.status == SubscriberStatus.CONFIRMED
    assert row.consent_source == "form" and row.consent_ip == "127.0.0.1"

    # The welcome email is a newsletter message: its unsubscribe link works in the browser.
    welcome = mailbox.wait_for(2)[1]
    unsubscribe_url = welcome.header("List-Unsubscribe").split(",")[0].strip(" <>")
    assert unsubscribe_url in welcome.text
    page.goto(unsubscribe_url)
    check_page(page, "fr", "en")
    visit.screenshot(page, f"unsubscribe-{language}")
    assert subscriber(app, address).status == SubscriberStatus.CONFIRMED  # GET changes nothing
    with page.expect_navigation():
        page.get_by_role("button", name=words["unsubscribe_button"]).click()
    assert page.locator("h1").inner_text() == words["unsubscribed"]
    visit.screenshot(page, f"unsubscribed-{language}")
    row = subscriber(app, address)
    assert row.status == SubscriberStatus.UNSUBSCRIBED
    assert row.unsubscribe_method == "link"


def test_subscribe_with_the_keyboard_only(visit, app, mailbox):
    page = visit.new_page(locale="en-GB")
    page.goto("/")
    order, invisible = [], []
    while not order or order[-1] != "submit":
        assert len(order) < 15, order
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return [e.id || (e.type === 'submit' ? 'submit' : e.getAttribute('href')),"
            " getComputedStyle(e).outlineStyle]; }"
        )
        order.append(focused[0])
        if focused[1] in ("none", ""):
            invisible.append(focused[0])
    # Focus is always visible: every focused element draws an outline.
    assert invisible == [], order
    assert order[0] == "#main", order  # the skip link comes first
    # Form fields in reading order, the hidden honeypot never reached.
    fields = [item for item in order if item in ("email", "name", "language", "website")]
    assert fields[:3] == ["email", "name", "language"]
    assert "website" not in order

    page.goto("/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the skip link moves focus to the content
    assert page.evaluate("() => document.activeElement.id") == "main"
    while page.evaluate("() => document.activeElement.id") != "email":
        page.keyboard.press("Tab")
    page.keyboard.type("not an address")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    # The error names the field, and the field points at the error.
    email = page.locator("#email")
    assert email.get_attribute("aria-invalid") == "true"
    assert page.locator(f"#{email.get_attribute('aria-describedby')}").is_visible()
    visit.screenshot(page, "subscribe-error-en")

    email.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("keyboard@example.org")
    page.keyboard.press("Tab")
    page.keyboard.type("Kim")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Check your inbox"
    assert mailbox.wait_for(1)[0].to == "keyboard@example.org"


def test_language_switch_keeps_the_page_and_its_query(visit, app):
    page = visit.new_page(locale="en-GB")
    page.goto("/subscribe?utm=press")
    assert page.get_attribute("html", "lang") == "en"
    with page.expect_navigation():
        page.get_by_role("link", name="Français").click()
    assert page.get_attribute("html", "lang") == "fr"
    assert re.search(r"/subscribe\?.*utm=press", page.url)
    assert page.locator("h1").inner_text() == FRENCH["subscribe_title"]
    # The choice sticks for the rest of the visit.
    page.goto("/subscribe")
    assert page.get_attribute("html", "lang") == "fr"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_public_pages_on_a_phone(visit, app, language):
    page = visit.new_page(locale="en-GB", phone=True)
    paths = {
        "subscribe": "/subscribe",
        "embed": "/subscribe/embed",
        "confirm-invalid": "/subscribe/confirm/not-a-token",
        "unsubscribe-invalid": "/unsubscribe/not-a-token",
        "not-found": "/no-such-page",
    }
    pages = [(name, f"{path}?lang={language}") for name, path in paths.items()]
    visit.tour(page, language, pages, prefix="phone-")


def test_the_page_checks_catch_what_they_look_for(visit, app):
    """The checks above would fail on a bad page: low contrast, no label, too wide."""
    page = visit.new_page()
    page.goto("/subscribe")
    page.evaluate(
        """() => {
        document.querySelector('main').insertAdjacentHTML('beforeend',
          '<p style="color:#bbb;background:#fff">pale</p><input id="unlabelled">'
          + '<div style="width:3000px">wide</div>');
        }"""
    )
    assert page.evaluate(CONTRAST_SCRIPT) == ["pale: 1.92"]
    assert len(page.evaluate(UNLABELLED_SCRIPT)) == 1
    assert page.evaluate(OVERFLOW_SCRIPT) > 0
