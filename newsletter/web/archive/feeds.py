"""What machines read: the Atom feeds of releases and digests, the sitemap, robots.txt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, render_template
from flask_babel import gettext as _

from ...config import FEED_ENTRIES, LANGUAGES
from ...dates import press_dateline
from ...delivery.links import digest_page_url, public_url_for, release_page_url
from ...domain import archive
from ...models import Digest, Release
from .common import (
    PRIVATE_PATHS,
    blueprint,
    conditional,
    digest_title,
    release_view,
    with_default_language,
)


def release_feed(language: str):
    """Atom feed of the newest releases of ``language``."""
    releases = archive.latest_releases(language, FEED_ENTRIES)
    entries = [
        {
            "id": public_url_for(
                "archive.release_bare", language=release.language, release_id=release.id
            ),
            "url": release_page_url(release.id, release.language, release.title),
            "title": release.title,
            "summary": release.summary,
            "content": archive.body_html(release),
            "published": release.published_at,
            "updated": max(release.updated_at, release.published_at),
            "dateline": press_dateline(release.dateline, release.published_at, language),
        }
        for release in releases
    ]
    return _feed(language, "releases", _("News releases"), entries, releases)


def digest_feed(language: str):
    digests = archive.latest_digests(language, FEED_ENTRIES)
    entries = []
    for digest in digests:
        url = digest_page_url(digest.id, language)
        items = archive.digest_releases(digest)
        entries.append(
            {
                "id": url,
                "url": url,
                "title": digest_title(digest),
                "summary": digest.subject or "",
                "content": render_template(
                    "archive/_digest_items.html",
                    releases=[
                        release_view(release)
                        | {"url": release_page_url(release.id, release.language, release.title)}
                        for release in items
                    ],
                ),
                "published": archive.digest_date(digest),
                "updated": digest.finished_at or archive.digest_date(digest),
                "dateline": None,
            }
        )
    return _feed(language, "digests", _("Newsletters"), entries, digests)


def _feed(
    language: str,
    section: str,
    title: str,
    entries: list[dict[str, Any]],
    rows: list[Release] | list[Digest],
) -> Response:
    """The Atom document of ``section`` (releases, digests): its entries, built from ``rows``."""
    updated = archive.last_change(rows) or datetime(2000, 1, 1)
    body = render_template(
        "archive/feed.xml",
        language=language,
        title=title,
        self_url=public_url_for(f"archive.{section[:-1]}_feed", language=language),
        page_url=public_url_for(f"archive.{section}", language=language),
        entries=entries,
        updated=updated,
        author=_("Newsroom"),
    )
    return conditional(body, "application/atom+xml", updated)


@blueprint.get("/sitemap.xml")
def sitemap():
    """Every public page, with the other language of each release as an alternate."""
    pages = [
        {"url": public_url_for(f"archive.{section}", language=code), "modified": None}
        for code in LANGUAGES
        for section in ("releases", "digests")
    ]
    rows = archive.all_public_releases()
    modified = max((row[3] for row in rows), default=None)
    groups: dict[int, dict[str, str]] = {}
    for release_id, language, title, _updated, group in rows:
        groups.setdefault(group, {}).setdefault(
            language, release_page_url(release_id, language, title)
        )
    for release_id, language, title, updated, group in rows:
        alternates = groups[group] if len(groups[group]) > 1 else {}
        pages.append(
            {
                "url": release_page_url(release_id, language, title),
                "modified": updated,
                "alternates": with_default_language(alternates),
            }
        )
    for digest_id, language, finished_at in archive.all_public_digests():
        pages.append({"url": digest_page_url(digest_id, language), "modified": finished_at})
    return conditional(
        render_template("archive/sitemap.xml", pages=pages), "application/xml", modified
    )


@blueprint.get("/robots.txt")
def robots():
    """Token pages (confirm, unsubscribe, preferences) and private areas stay out of indexes."""
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in PRIVATE_PATHS)]
    lines += ["", f"Sitemap: {public_url_for('archive.sitemap')}", ""]
    return conditional("\n".join(lines), "text/plain")


def atom_date(value: datetime) -> str:
    """RFC 3339 in UTC, as Atom wants."""
    return value.replace(tzinfo=UTC, microsecond=0).isoformat().replace("+00:00", "Z")
