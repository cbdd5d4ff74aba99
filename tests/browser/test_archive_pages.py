"""A reader, in a real browser, on the public archive: archive → release page → the other
language → subscribe from the release page; and a digest read from the real SMTP server, its
links followed to the release pages and to its web version."""

from __future__ import annotations

import re
import urllib.request
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from newsletter.delivery.digests import run_digest
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus, utcnow
from tests.support.browser import check_page
from tests.support.digests import add_release, add_subscribers, wait_until

WORDS = {
    "fr": {
        "archive": "Communiqués de presse",
        "archive_path": "/fr/communiques/",
        "title": "Conférence de presse à Rome",
        "dateline": "Rome, 14 janvier 2026",
        "check_inbox": "Consultez votre boîte de réception",
        "search": "Rechercher",
    },
    "en": {
        "archive": "News releases",
        "archive_path": "/en/releases/",
        "title": "Press conference in Rome",
        "dateline": "Rome, January 14, 2026",
        "check_inbox": "Check your inbox",
        "search": "Search",
    },
}
OTHER = {"fr": "en", "en": "fr"}
HREF = re.compile(r'href="([^"]+)"')


# The Rome release's own text in each language: (summary, body).
ROME = {
    "fr": (
        "Les ministres présentent le budget européen.",
        "<p>Les ministres ont présenté le <strong>budget</strong>.</p>",
    ),
    "en": (
        "Ministers present the European budget.",
        "<p>Ministers presented the <strong>budget</strong>.</p>",
    ),
}


def add_rome_release(language: str, published_at: datetime, **values):
    """The Rome press conference in ``language``, titled as WORDS says."""
    summary, body_html = ROME[language]
    return add_release(
        language=language,
        title=WORDS[language]["title"],
        dateline="Rome",
        summary=summary,
        body_html=body_html,
        published_at=published_at,
        **values,
    )


def add_pair() -> None:
    french = add_rome_release("fr", datetime(2026, 1, 14, 10, 0))
    add_rome_release("en", datetime(2026, 1, 14, 10, 5), translation_of_id=french.id)
    for index in range(3):
        for language in ("fr", "en"):
            add_release(
                language=language,
                title=f"{'Annonce' if language == 'fr' else 'Notice'} {index}",
                dateline="Bruxelles" if language == "fr" else "Brussels",
                published_at=datetime(2025, 6, 1 + index, 9, 0),
            )


@pytest.mark.parametrize(
    ("language", "phone"), [("fr", False), ("en", True), ("fr", True), ("en", False)]
)
def test_reader_goes_from_the_archive_to_a_release_switches_language_and_subscribes(
    visit, app, mailbox, language, phone
):
    with app.app_context():
        add_pair()
    words, other = WORDS[language], OTHER[language]
    width = "phone" if phone else "desktop"
    page = visit.new_page(locale={"fr": "fr-BE", "en": "en-GB"}[language], phone=phone)

    page.goto(words["archive_path"])
    assert page.locator("h1").inner_text() == words["archive"]
    feeds = page.locator('link[rel=alternate][type="application/atom+xml"]')
    assert feeds.count() == 4
    check_page(page, language)
    visit.screenshot(page, f"archive-{language}-{width}")

    page.locator("#q").fill("Rome")
    with page.expect_navigation():
        page.get_by_role("button", name=words["search"]).click()
    assert page.locator(".release-list article").count() == 1
    visit.screenshot(page, f"archive-search-{language}-{width}")

    with page.expect_navigation():
        page.get_by_role("link", name=words["title"]).click()
    assert page.locator("h1").inner_text() == words["title"]
    assert page.locator(".dateline").inner_text() == words["dateline"]
    assert page.locator('meta[property="og:title"]').get_attribute("content") == words["title"]
    check_page(page, language)
    visit.screenshot(page, f"release-{language}-{width}")

    # The language switch in the header leads to the translation, not the other archive.
    with page.expect_navigation():
        page.locator(f'header a[hreflang="{other}"]').click()
    assert page.locator("h1").inner_text() == WORDS[other]["title"]
    assert page.locator(".dateline").inner_text() == WORDS[other]["dateline"]
    check_page(page, other)
    visit.screenshot(page, f"release-switched-to-{other}-{width}")

    address = f"journalist.{language}.{width}@example.org"
    page.locator("#email").fill(address)
    # The form speaks the page's language: the newsletter defaults to it.
    assert page.locator("#language").input_value() == other
    with page.expect_navigation():
        page.locator("form.subscribe-form button[type=submit]").click()
    assert page.locator("h1").inner_text() == words["check_inbox"]
    visit.screenshot(page, f"subscribed-from-release-{language}-{width}")
    [confirmation] = mailbox.wait_for(1)
    assert confirmation.to == address
    assert confirmation.header("Content-Language") == other


def fetch(url: str) -> int:
    """The status of ``url`` on the live server, redirects followed."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.status


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_digest_from_the_smtp_server_links_to_release_pages_and_its_web_version(
    visit, app, mailbox, language
):
    with app.app_context():
        for index in range(2):
            add_release(
                language=language,
                title=f"{'Communiqué' if language == 'fr' else 'Release'} {index + 1}",
                dateline="Rome",
                summary="Résumé" if language == "fr" else "Summary",
                published_at=utcnow() - timedelta(hours=index + 1),
            )
        [address] = add_subscribers(1, language=language, prefix=f"reader-{language}")
        digest = create_digest({"language": language})
        db.session.commit()
        assert run_digest(digest.id).result == "sending"
        digest_id = digest.id
    [message] = mailbox.wait_for(1, timeout=30)
    assert message.to == address
    live = visit.live.url

    text_links = message.links()
    html_links = [link.replace("&amp;", "&") for link in HREF.findall(message.html)]
    assert set(text_links) == set(html_links)
    for link in set(text_links):
        assert link.startswith(live), link
        assert fetch(link) == 200, link

    section = {"fr": "lettres", "en": "digests"}[language]
    web_version = f"{live}/{language}/{section}/{digest_id}"
    assert web_version in text_links
    release_pages = [link for link in text_links if "/communiques/" in link or "/releases/" in link]
    assert len(release_pages) == 2

    # The email itself, as a mail client shows its HTML part.
    for phone in (False, True):
        width = "phone" if phone else "desktop"
        reader = visit.new_page(locale={"fr": "fr-BE", "en": "en-GB"}[language], phone=phone)
        reader.set_content(message.html)
        visit.screenshot(reader, f"digest-email-{language}-{width}")

        reader.goto(web_version)
        check_page(reader, language)
        content = reader.content()
        assert address not in content and "/unsubscribe/" not in content
        assert "/preferences/" not in content
        heading = reader.locator("h1").inner_text()
        assert heading.startswith("Lettre du " if language == "fr" else "Newsletter of ")
        visit.screenshot(reader, f"digest-web-version-{language}-{width}")

        with reader.expect_navigation():
            reader.locator(".release-list a").first.click()
        assert urlsplit(reader.url).path == urlsplit(release_pages[0]).path
        check_page(reader, language)
        visit.screenshot(reader, f"digest-release-page-{language}-{width}")

    # Leave the worker idle (the digest recorded sent) before the next test stops it.
    wait_until(lambda: digest_status(app, digest_id) == DigestStatus.SENT, timeout=30)


def digest_status(app, digest_id: int) -> str:
    with app.app_context():
        return db.session.get(Digest, digest_id).status
