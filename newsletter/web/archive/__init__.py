"""Public archive: release pages, the archive with search, digests' web versions, Atom feeds,
the sitemap and robots.txt.

Every page here is the same for everyone: its language comes from its URL (never the
session), it reads no cookie and sets none, and it carries ``Cache-Control: public`` with an
``ETag`` (and ``Last-Modified`` when known) so a CDN can serve it and a reader's refresh costs
a 304. Absolute links (canonical, OpenGraph, feeds, sitemap) come from ``NEWSLETTER_PUBLIC_URL``,
never from the request's Host header, so a cached page cannot be poisoned through it.
"""

from __future__ import annotations

from ...config import ARCHIVE_SECTIONS, LANGUAGE_NAMES
from .common import blueprint
from .feeds import atom_date, digest_feed, release_feed
from .pages import digest_page, digests_page, release_page, releases_page

__all__ = ["blueprint"]


def _add_rules() -> None:
    """One set of URLs per language, in its own words: /fr/communiques/, /en/releases/..."""
    for language, sections in ARCHIVE_SECTIONS.items():
        releases = f"/{language}/{sections['releases']}"
        digests = f"/{language}/{sections['digests']}"
        defaults = {"language": language}
        rules = [
            (f"{releases}/", "releases", releases_page),
            (f"{releases}/<int:release_id>-<slug>", "release", release_page),
            (f"{releases}/<int:release_id>", "release_bare", release_page),
            (f"{releases}/feed.atom", "release_feed", release_feed),
            (f"{digests}/", "digests", digests_page),
            (f"{digests}/<int:digest_id>", "digest", digest_page),
            (f"{digests}/feed.atom", "digest_feed", digest_feed),
        ]
        for rule, endpoint, view in rules:
            blueprint.add_url_rule(rule, endpoint, view, defaults=defaults)


_add_rules()
blueprint.add_app_template_filter(atom_date, "atom_date")
blueprint.add_app_template_global(LANGUAGE_NAMES, "language_names")
