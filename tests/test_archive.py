"""The public archive: release pages, archive search and paging, digests' web versions, Atom
feeds, sitemap and robots.txt; digests that link to all of it; pages a CDN may share."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import feedparser
import pytest
from sqlalchemy import select, text

from newsletter.dates import format_date
from newsletter.delivery.digests import run_digest
from newsletter.domain.archive import SEARCH_EXPRESSION, slugify
from newsletter.domain.digest_composition import default_subject
from newsletter.domain.digests import create_digest
from newsletter.domain.releases import InvalidInput, create_release
from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus, Release, utcnow
from tests.support.digests import add_release, add_subscribers

ATOM = "{http://www.w3.org/2005/Atom}"
HREF = re.compile(r'href="([^"]+)"')


def release_url(release: Release) -> str:
    section = {"fr": "communiques", "en": "releases"}[release.language]
    return f"/{release.language}/{section}/{release.id}-{slugify(release.title)}"


def pair(app) -> tuple[Release, Release]:
    """A French release from Rome and its English translation."""
    french = add_release(
        language="fr",
        title="Conférence de presse à Rome",
        dateline="Rome",
        summary="Les ministres présentent le budget européen.",
        body_html='<p>Texte <strong>important</strong></p><script>alert("x")</script>'
        '<a href="javascript:alert(1)">lien</a>',
        published_at=datetime(2026, 1, 14, 10, 0),
        image_url="https://cdn.example.org/rome.jpg",
        video_url="https://video.example.org/rome",
        url="https://www.example.org/presse/rome",
    )
    english = add_release(
        language="en",
        title="Press conference in Rome",
        dateline="Rome",
        summary="Ministers present the European budget.",
        published_at=datetime(2026, 1, 14, 10, 5),
        translation_of_id=french.id,
    )
    return french, english


# ---------------------------------------------------------------------------------------------
# Dates


def test_french_dates_write_the_first_of_the_month_as_1er():
    first = datetime(2026, 12, 1, 8, 0)
    assert format_date(first, "fr") == "1er décembre 2026"
    assert format_date(first, "fr", "full") == "mardi 1er décembre 2026"
    assert format_date(datetime(2026, 1, 14), "fr") == "14 janvier 2026"
    assert format_date(datetime(2026, 1, 11), "fr") == "11 janvier 2026"
    assert format_date(first, "en") == "December 1, 2026"


def test_digest_subjects_write_the_first_of_the_month_as_1er(app):
    with app.app_context():
        subject = default_subject("fr", [], datetime(2026, 12, 1, 8, 0))
        assert subject == "1er décembre 2026"
        release = add_release(language="fr", title="Conférence de presse à Rome")
        with_release = default_subject("fr", [release], datetime(2026, 12, 1, 8, 0))
        english = default_subject("en", [release], datetime(2026, 12, 1, 8, 0))
    assert "1er décembre 2026" in with_release and " 1 décembre" not in with_release
    assert "December 1, 2026" in english


def test_digests_sent_on_the_first_carry_1er_in_subject_and_web_version(
    app, client, mailbox, run_worker
):
    with app.app_context():
        add_release(language="fr", title="Premier communiqué", published_at=datetime(2026, 11, 30))
        add_subscribers(1, language="fr")
        digest = create_digest({"language": "fr"}, now=datetime(2026, 12, 1, 7, 0))
        db.session.commit()
        digest_id = digest.id
        assert run_digest(digest_id, now=datetime(2026, 12, 1, 7, 0)).result == "sending"
    run_worker()
    [message] = mailbox.wait_for(1)
    subject = message.message["Subject"]
    assert "1er décembre 2026" in subject and " 1 décembre" not in subject, subject
    page = client.get(f"/fr/lettres/{digest_id}").get_data(as_text=True)
    assert "Lettre du 1er décembre 2026" in page


# ---------------------------------------------------------------------------------------------
# Release pages


def test_release_page_is_a_press_release_in_its_language(app, client):
    with app.app_context():
        french, english = pair(app)
        french_url, english_url = release_url(french), release_url(english)
    response = client.get(french_url)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="fr">' in page
    assert "Rome, 14 janvier 2026" in page
    assert "<strong>important</strong>" in page
    assert "<script>alert" not in page and "javascript:" not in page
    # Media links, the canonical original, the translation (link and hreflang alternates).
    assert 'href="https://cdn.example.org/rome.jpg"' in page
    assert 'href="https://video.example.org/rome"' in page
    assert '<link rel="canonical" href="https://www.example.org/presse/rome">' in page
    assert f'href="{english_url}" hreflang="en"' in page
    assert (
        f'<link rel="alternate" hreflang="en" href="https://news.example.org{english_url}">' in page
    )
    # French first: a reader whose language has no version is sent to the French one.
    assert (
        f'<link rel="alternate" hreflang="x-default" href="https://news.example.org{french_url}">'
        in page
    )
    assert '<meta property="og:title" content="Conférence de presse à Rome">' in page
    assert '<meta property="og:image" content="https://cdn.example.org/rome.jpg">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    assert 'action="/subscribe"' in page
    # The form records the page's own address, not one visitor's referrer (the page is shared).
    assert f'name="page" value="https://news.example.org{french_url}"' in page

    # Pictures in a body may come from the press office's https host; nothing else loosens.
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https:;" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy

    english_page = client.get(english_url).get_data(as_text=True)
    assert '<html lang="en">' in english_page
    assert "Rome, January 14, 2026" in english_page
    assert f'href="{french_url}" hreflang="fr"' in english_page
    assert (
        f'<link rel="alternate" hreflang="x-default" href="https://news.example.org{french_url}">'
        in english_page
    )
    # No external URL: the page is its own canonical.
    assert f'<link rel="canonical" href="https://news.example.org{english_url}">' in english_page


def test_wrong_slug_or_language_redirects_and_unknown_releases_are_404(app, client):
    with app.app_context():
        french, _english = pair(app)
        future = add_release(
            language="fr", title="Pas encore", published_at=utcnow() + timedelta(days=1)
        )
        right = release_url(french)
        release_id, future_id = french.id, future.id
    for wrong in (
        f"/fr/communiques/{release_id}-ancien-titre",
        f"/fr/communiques/{release_id}",
        f"/en/releases/{release_id}-conference-de-presse-a-rome",
    ):
        response = client.get(wrong)
        assert response.status_code == 301, wrong
        assert urlsplit(response.headers["Location"]).path == right
    assert client.get("/fr/communiques/987654-x").status_code == 404
    assert client.get(f"/fr/communiques/{future_id}-pas-encore").status_code == 404
    assert client.get("/fr/communiques/99999999999999999999999-x").status_code == 404


# ---------------------------------------------------------------------------------------------
# Archive


def many_releases(count: int, language: str = "fr") -> None:
    start = datetime(2025, 11, 1, 9, 0)
    for index in range(count):
        add_release(
            language=language,
            title=f"Communiqué numéro {index}",
            summary="Les budgets régionaux" if index % 5 == 0 else "Annonce",
            published_at=start + timedelta(days=7 * index),
        )


def test_archive_pages_newest_first_with_year_filter_and_search(app, client):
    with app.app_context():
        many_releases(25)
        add_release(language="en", title="Regional budget", published_at=datetime(2026, 2, 1))
    first = client.get("/fr/communiques/").get_data(as_text=True)
    assert "25 communiqués" in first
    assert first.index("Communiqué numéro 24") < first.index("Communiqué numéro 23")
    assert "Communiqué numéro 4<" not in first
    assert "Page 1 sur 2" in first
    second = client.get("/fr/communiques/?page=2").get_data(as_text=True)
    assert "Communiqué numéro 4<" in second and "Communiqué numéro 5<" not in second
    assert client.get("/fr/communiques/?page=3").status_code == 404
    assert client.get("/fr/communiques/?page=0").status_code == 404

    # 2025: 1 November to 27 December, weekly: 9 releases.
    in_2025 = client.get("/fr/communiques/?year=2025").get_data(as_text=True)
    assert "9 communiqués" in in_2025 and '<option value="2025" selected>' in in_2025

    # "budget" finds "budgets" with PostgreSQL's French stemming; LIKE finds it as a substring.
    found = client.get("/fr/communiques/?q=budget").get_data(as_text=True)
    assert "5 communiqués" in found
    assert "Regional budget" not in found  # the English archive is another page
    assert "1 release" in client.get("/en/releases/?q=budget").get_data(as_text=True)
    both = client.get("/fr/communiques/?q=budget&year=2026").get_data(as_text=True)
    assert "3 communiqués" in both
    assert "0 communiqué" in client.get("/fr/communiques/?q=introuvable").get_data(as_text=True)


@pytest.mark.parametrize(
    "query",
    ["'", '"', "a & b | !c", "(((", "foo:*", "%_\\", "\x00\x01 budget", "x" * 5000, "-", "or"],
)
def test_hostile_search_input_gets_a_page_never_a_500(app, client, query):
    with app.app_context():
        many_releases(3)
    response = client.get("/fr/communiques/", query_string={"q": query, "year": "abc"})
    assert response.status_code == 200


def test_english_search_stems_on_postgresql(app, client, is_postgres):
    if not is_postgres:
        pytest.skip("PostgreSQL full-text search (SQLite matches substrings)")
    with app.app_context():
        add_release(language="en", title="Ministers announce cuts", summary="Budgets shrink")
        add_release(language="en", title="Press conference", summary="Nothing on money")
        add_release(language="fr", title="Budgets annoncés", summary="Annonce")
    # "announcing" and "budget" find "announce" and "Budgets" through the English stemmer.
    found = client.get("/en/releases/?q=announcing budget").get_data(as_text=True)
    assert "1 release" in found and "Ministers announce cuts" in found
    assert "Budgets annoncés" not in found  # another language's archive
    assert "0 releases" in client.get("/en/releases/?q=annonce").get_data(as_text=True)


def test_search_uses_the_gin_index_on_postgresql(app, is_postgres):
    if not is_postgres:
        pytest.skip("PostgreSQL full-text search")
    with app.app_context():
        many_releases(3)
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in db.session.execute(
                text(
                    f"EXPLAIN SELECT id FROM releases WHERE {SEARCH_EXPRESSION} "
                    "@@ websearch_to_tsquery('french'::regconfig, 'budget')"
                )
            )
        )
        db.session.rollback()
    assert "ix_releases_search" in plan, plan


# ---------------------------------------------------------------------------------------------
# Feeds


def test_atom_feed_of_25_releases_validates_and_answers_304(app, client):
    with app.app_context():
        many_releases(25)
    archive = client.get("/fr/communiques/").get_data(as_text=True)
    assert (
        '<link rel="alternate" type="application/atom+xml" hreflang="fr" '
        'title="Communiqués de presse (Français)" href="/fr/communiques/feed.atom">'
    ) in archive
    response = client.get("/fr/communiques/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    body = response.get_data()

    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert len(parsed.entries) == 25
    assert parsed.entries[0].title == "Communiqué numéro 24"

    root = ET.fromstring(body)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author/" + ATOM + "name"):
        assert root.find(ATOM + name) is not None and root.find(ATOM + name).text, name
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links["self"] == "https://news.example.org/fr/communiques/feed.atom"
    assert links["alternate"] == "https://news.example.org/fr/communiques/"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 25
    ids = set()
    for entry in entries:
        for name in ("id", "title", "updated"):
            assert entry.find(ATOM + name).text, name
        link = entry.find(f"{ATOM}link").get("href")
        assert client.get(urlsplit(link).path).status_code == 200
        ids.add(entry.find(f"{ATOM}id").text)
    assert len(ids) == 25

    etag = response.headers["ETag"]
    assert response.headers["Last-Modified"]
    again = client.get("/fr/communiques/feed.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    since = client.get(
        "/fr/communiques/feed.atom",
        headers={"If-Modified-Since": response.headers["Last-Modified"]},
    )
    assert since.status_code == 304
    with app.app_context():
        add_release(language="fr", title="Nouveau", published_at=utcnow() - timedelta(minutes=1))
    changed = client.get("/fr/communiques/feed.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"Nouveau" in changed.get_data()


# ---------------------------------------------------------------------------------------------
# Digests: links in the email, web version, feed


def send_digest(app, run_worker, language: str) -> int:
    with app.app_context():
        digest = create_digest({"language": language})
        db.session.commit()
        assert run_digest(digest.id).result == "sending"
        digest_id = digest.id
    run_worker()
    return digest_id


def test_every_link_in_a_digest_answers_and_the_web_version_is_impersonal(
    app, client, mailbox, run_worker
):
    with app.app_context():
        french, _english = pair(app)
        for release in (french, _english):
            release.published_at = utcnow() - timedelta(hours=2)
            release.url = release.image_url = release.video_url = None
        add_release(language="fr", title="Deuxième communiqué du jour")
        db.session.commit()
        [address] = add_subscribers(1, language="fr", prefix="lectrice")
    digest_id = send_digest(app, run_worker, "fr")
    [message] = mailbox.wait_for(1)
    assert message.to == address

    text_links = message.links()
    html_links = [link.replace("&amp;", "&") for link in HREF.findall(message.html)]
    web_version = f"https://news.example.org/fr/lettres/{digest_id}"
    assert web_version in text_links and web_version in html_links
    assert any("/preferences/" in link for link in html_links)
    assert any("/preferences/" in link for link in text_links)
    with app.app_context():
        release_pages = [
            f"https://news.example.org{release_url(release)}"
            for release in db.session.scalars(select(Release).where(Release.language == "fr"))
        ]
    for page in release_pages:
        assert page in text_links and page in html_links
    for link in set(text_links + html_links):
        parts = urlsplit(link)
        assert parts.netloc == "news.example.org", link
        response = client.get(parts.path, query_string=parts.query, follow_redirects=True)
        assert response.status_code == 200, link

    page = client.get(f"/fr/lettres/{digest_id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    with app.app_context():
        day = db.session.get(Digest, digest_id).started_at
    assert f"Lettre du {format_date(day, 'fr')}" in body
    assert "Deuxième communiqué du jour" in body
    personal = [link for link in text_links if "/unsubscribe/" in link or "/preferences/" in link]
    assert personal
    for link in personal:
        assert urlsplit(link).path.rsplit("/", 1)[1] not in body
    assert address not in body and "lectrice" not in body
    assert "/unsubscribe/" not in body and "/preferences/" not in body

    digests = client.get("/fr/lettres/").get_data(as_text=True)
    assert f'href="/fr/lettres/{digest_id}"' in digests
    feed_response = client.get("/fr/lettres/feed.atom")
    assert feed_response.mimetype == "application/atom+xml"
    feed = feed_response.get_data()
    parsed = feedparser.parse(feed)
    assert parsed.bozo == 0 and len(parsed.entries) == 1
    assert parsed.entries[0].link == web_version
    assert address.encode() not in feed
    root = ET.fromstring(feed)
    assert root.tag == f"{ATOM}feed"
    [entry] = root.findall(f"{ATOM}entry")
    for name in ("id", "title", "updated"):
        assert entry.find(ATOM + name).text, name
    assert entry.find(f"{ATOM}link").get("href") == web_version
    etag = feed_response.headers["ETag"]
    assert client.get("/fr/lettres/feed.atom", headers={"If-None-Match": etag}).status_code == 304
    since = {"If-Modified-Since": feed_response.headers["Last-Modified"]}
    assert client.get("/fr/lettres/feed.atom", headers=since).status_code == 304
    # Another language's digest list does not show it; its URL redirects to its language.
    assert f"/fr/lettres/{digest_id}" not in client.get("/en/digests/").get_data(as_text=True)
    assert client.get(f"/en/digests/{digest_id}").status_code == 301
    assert f"<loc>{web_version}</loc>" in client.get("/sitemap.xml").get_data(as_text=True)


def test_digests_not_yet_sent_are_not_public(app, client):
    with app.app_context():
        digest = create_digest({"language": "fr", "send_at": None})
        db.session.commit()
        assert digest.status == DigestStatus.SCHEDULED
        digest_id = digest.id
    assert client.get(f"/fr/lettres/{digest_id}").status_code == 404
    assert client.get("/fr/lettres/feed.atom").status_code == 200


# ---------------------------------------------------------------------------------------------
# Shared by everyone: cache headers, no cookies; sitemap and robots.txt


def public_urls(app) -> list[str]:
    with app.app_context():
        french, english = pair(app)
        return [
            "/fr/communiques/",
            "/en/releases/?q=rome&year=2026",
            release_url(french),
            release_url(english),
            "/fr/lettres/",
            "/en/digests/",
            "/fr/communiques/feed.atom",
            "/en/digests/feed.atom",
            "/sitemap.xml",
            "/robots.txt",
        ]


def test_public_pages_are_cacheable_and_set_no_cookie(app, client):
    urls = public_urls(app)
    # A visitor who already holds a session (they chose a language elsewhere on the site).
    client.get("/subscribe?lang=en")
    assert client.get_cookie("session") is not None
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Set-Cookie" not in response.headers, url
        assert response.headers["Cache-Control"] == "public, max-age=300", url
        assert "cookie" not in response.headers.get("Vary", "").lower(), url
        assert response.headers["ETag"], url
    # The URL's language wins over the session's.
    assert '<html lang="fr">' in client.get(urls[0]).get_data(as_text=True)
    fresh = app.test_client()
    for url in urls:
        response = fresh.get(url)
        assert "Set-Cookie" not in response.headers, url
    assert fresh.get_cookie("session") is None


def test_sitemap_lists_public_pages_and_robots_keeps_token_pages_out(app, client):
    urls = public_urls(app)
    sitemap = client.get("/sitemap.xml")
    root = ET.fromstring(sitemap.get_data())
    locations = {
        element.text for element in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")
    }
    for url in urls[:4]:
        assert f"https://news.example.org{urlsplit(url).path}" in locations
    # Each release of a translated pair names both versions and the French default.
    xhtml = "{http://www.w3.org/1999/xhtml}link"
    french, english = (f"https://news.example.org{path}" for path in urls[2:4])
    for element in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}url"):
        location = element.find("{http://www.sitemaps.org/schemas/sitemap/0.9}loc").text
        links = {link.get("hreflang"): link.get("href") for link in element.iter(xhtml)}
        if location in (french, english):
            assert links == {"fr": french, "en": english, "x-default": french}, location
        else:
            assert links == {}, location
    robots = client.get("/robots.txt").get_data(as_text=True)
    for private in ("/unsubscribe/", "/subscribe/confirm/", "/preferences/", "/admin", "/api/"):
        assert f"Disallow: {private}" in robots
    assert "Sitemap: https://news.example.org/sitemap.xml" in robots


# ---------------------------------------------------------------------------------------------
# Translations through the API's domain


def test_a_release_can_name_the_release_it_translates(app):
    with app.app_context():
        original = create_release({"title": "Original", "language": "fr", "summary": "s"})
        translation = create_release(
            {"title": "Translation", "language": "en", "translation_of": original.id}
        )
        third = create_release(
            {"title": "Tercera", "language": "en", "translation_of": translation.id}
        )
        # A translation of a translation points at the group's original: no chains.
        assert translation.translation_of_id == original.id == third.translation_of_id
        with pytest.raises(InvalidInput) as refused:
            create_release({"title": "x", "language": "en", "translation_of": 987654})
        assert "translation_of" in refused.value.fields
        with pytest.raises(InvalidInput):
            create_release({"title": "x", "language": "en", "translation_of": "1; DROP"})
        db.session.rollback()


def test_a_logged_in_visitor_gets_the_shared_page_and_keeps_their_session(app, client):
    from tests.support.accounts import STRONG_PASSWORD, login, make_user

    urls = public_urls(app)
    make_user(app, "staff@example.org", staff=True, language="en")
    assert login(client, "staff@example.org", STRONG_PASSWORD).status_code in (302, 303)
    session_before = client.get_cookie("session").value
    anonymous = app.test_client().get(urls[2]).get_data()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Set-Cookie" not in response.headers, url
    # Byte for byte what an anonymous visitor gets: nothing of the account on a shared page.
    assert client.get(urls[2]).get_data() == anonymous
    assert client.get_cookie("session").value == session_before
    assert client.get("/account").status_code == 200  # still logged in


def test_staff_link_a_translation_through_the_api_and_both_pages_show_it(app, client):
    from tests.support.digests import staff_token

    with app.app_context():
        token = staff_token()
    auth = {"Authorization": f"Bearer {token}"}
    french = client.post(
        "/api/v1/releases",
        json={"title": "Budget annuel", "language": "fr", "summary": "Le budget."},
        headers=auth,
    )
    assert french.status_code == 201
    english = client.post(
        "/api/v1/releases",
        json={
            "title": "Annual budget",
            "language": "en",
            "summary": "The budget.",
            "translation_of": french.json["id"],
        },
        headers=auth,
    )
    assert english.status_code == 201 and english.json["translation_of"] == french.json["id"]
    bad = client.post(
        "/api/v1/releases",
        json={"title": "x", "language": "en", "translation_of": "abc"},
        headers=auth,
    )
    assert bad.status_code in (400, 422) and "translation_of" in bad.json["error"]["fields"]
    fr_path = f"/fr/communiques/{french.json['id']}-budget-annuel"
    en_path = f"/en/releases/{english.json['id']}-annual-budget"
    assert f'href="{en_path}" hreflang="en"' in client.get(fr_path).get_data(as_text=True)
    assert f'href="{fr_path}" hreflang="fr"' in client.get(en_path).get_data(as_text=True)
