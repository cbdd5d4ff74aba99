"""The archive's HTML pages: the release list with search, a release, past digests, a digest."""

from __future__ import annotations

from datetime import UTC

from flask import abort, redirect, request, url_for

from ...config import ARCHIVE_PAGE_SIZE, LANGUAGES
from ...dates import press_dateline
from ...delivery.links import digest_page_url, public_url_for, release_page_url
from ...domain import archive
from .common import (
    OG_LOCALES,
    _page_number,
    _render,
    digest_title,
    release_path,
    release_view,
    with_default_language,
)


def releases_page(language: str):
    """The archive: newest first, paged, with a year filter and a search box."""
    page = _page_number()
    year = request.args.get("year", type=int)
    if year is not None and not 1900 <= year <= 2999:
        year = None
    text = archive.clean_query(request.args.get("q"))
    found = archive.archive_page(
        archive.ArchiveFilter(language=language, year=year, text=text),
        page=page,
        per_page=ARCHIVE_PAGE_SIZE,
    )
    if page > found.pages:
        abort(404)
    args = {key: value for key, value in (("q", text), ("year", year)) if value}
    other = {code: url_for("archive.releases", language=code) for code in LANGUAGES}
    return _render(
        "archive/releases.html",
        language=language,
        found=found,
        releases=[release_view(release) for release in found.items],
        years=archive.archive_years(language),
        year=year,
        text=text,
        args=args,
        alternates=other,
        modified=archive.last_change(found.items),
        canonical=public_url_for("archive.releases", language=language),
    )


def release_page(language: str, release_id: int, slug: str | None = None):
    """One release in its language; a wrong slug or language redirects to the right URL."""
    release = archive.public_release(release_id)
    if release is None:
        abort(404)
    right_slug = archive.slugify(release.title)
    if release.language != language or slug != right_slug:
        return redirect(release_path(release), code=301)
    translations = archive.translations(release)
    own_url = release_page_url(release.id, release.language, release.title)
    alternates = with_default_language(
        {release.language: own_url}
        | {
            code: release_page_url(other.id, other.language, other.title)
            for code, other in translations.items()
        }
    )
    switch = {code: url_for("archive.releases", language=code) for code in LANGUAGES} | {
        code: release_path(other) for code, other in translations.items()
    }
    switch[language] = release_path(release)
    return _render(
        "archive/release.html",
        language=language,
        release=release,
        body=archive.body_html(release),
        dateline=press_dateline(release.dateline, release.published_at, release.language),
        published_iso=release.published_at.replace(tzinfo=UTC).isoformat(),
        translations=translations,
        translation_paths={code: release_path(other) for code, other in translations.items()},
        hreflang=alternates,
        alternates=switch,
        own_url=own_url,
        canonical=release.url or own_url,
        og_locale=OG_LOCALES.get(language, language),
        modified=release.updated_at,
        form_page=own_url,
    )


def digests_page(language: str):
    page = _page_number()
    found = archive.digests_page(language, page=page, per_page=ARCHIVE_PAGE_SIZE)
    if page > found.pages:
        abort(404)
    digests = [
        {
            "title": digest_title(digest),
            "subject": digest.subject,
            "path": url_for("archive.digest", language=language, digest_id=digest.id),
            "date_iso": archive.digest_date(digest).date().isoformat(),
        }
        for digest in found.items
    ]
    return _render(
        "archive/digests.html",
        language=language,
        found=found,
        digests=digests,
        alternates={code: url_for("archive.digests", language=code) for code in LANGUAGES},
        modified=archive.last_change(found.items),
        canonical=public_url_for("archive.digests", language=language),
    )


def digest_page(language: str, digest_id: int):
    """The web version of a digest: what was sent, with no personal link."""
    digest = archive.public_digest(digest_id)
    if digest is None:
        abort(404)
    if digest.language != language:
        return redirect(
            url_for("archive.digest", language=digest.language, digest_id=digest.id), code=301
        )
    releases = archive.digest_releases(digest)
    return _render(
        "archive/digest.html",
        language=language,
        digest=digest,
        title=digest_title(digest),
        releases=[release_view(release) for release in releases],
        alternates={code: url_for("archive.digests", language=code) for code in LANGUAGES}
        | {language: url_for("archive.digest", language=language, digest_id=digest.id)},
        modified=digest.finished_at or digest.started_at,
        canonical=digest_page_url(digest.id, language),
    )
