"""Public archive: release pages, the archive with search, digests' web versions, Atom feeds,
the sitemap and robots.txt.

Every page here is the same for everyone: its language comes from its URL (never the
session), it reads no cookie and sets none, and it carries ``Cache-Control: public`` with an
``ETag`` (and ``Last-Modified`` when known) so a CDN can serve it and a reader's refresh costs
a 304. Absolute links (canonical, OpenGraph, feeds, sitemap) come from ``NEWSLETTER_PUBLIC_URL``,
never from the request's Host header, so a cached page cannot be poisoned through it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.sessions import SessionInterface
from flask_babel import gettext as _
from flask_babel import refresh

from ..config import (
    ARCHIVE_PAGE_SIZE,
    ARCHIVE_SECTIONS,
    DEFAULT_LANGUAGE,
    FEED_ENTRIES,
    LANGUAGES,
    PUBLIC_CACHE_SECONDS,
)
from ..dates import format_date, press_dateline
from ..delivery.links import digest_page_url, public_url_for, release_page_url
from ..domain import archive
from ..extensions import login_manager
from ..models import Digest, Release

blueprint = Blueprint("archive", __name__)

ARCHIVE_CSP = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'"
)
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}
OG_LOCALES = {"fr": "fr_FR", "en": "en_GB"}
# Paths that hold a personal token, or need an account: never indexed.
PRIVATE_PATHS = (
    "/subscribe/confirm/",
    "/unsubscribe/",
    "/preferences/",
    "/account",
    "/admin",
    "/api/",
    "/login",
    "/register",
    "/reset",
)


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


@blueprint.before_request
def _same_page_for_everyone() -> None:
    """Language from the URL; the visitor is anonymous here.

    Flask-Login would otherwise load the user from the session for every template (its
    context processor), and its session protection rewrites a session it does not recognise
    and deletes the remember cookie: a ``Set-Cookie`` on a page a CDN is meant to share.
    """
    g._login_user = login_manager.anonymous_user()
    language = (request.view_args or {}).get("language")
    if language in LANGUAGES:
        g.url_language = language
        refresh()


@blueprint.after_request
def _public_cache(response: Response) -> Response:
    """Shared caches may keep public answers; errors are not worth keeping long."""
    if response.status_code in (200, 301, 304):
        response.cache_control.public = True
        response.cache_control.max_age = PUBLIC_CACHE_SECONDS
    else:
        response.cache_control.no_store = True
    response.vary.add("Accept-Encoding")
    # Release bodies may show pictures hosted by the press office (https only); the rest of
    # the site's policy holds (no scripts, no framing, forms only to this site).
    response.headers.setdefault("Content-Security-Policy", ARCHIVE_CSP)
    return response


def conditional(body: str, mimetype: str, last_modified: datetime | None = None) -> Response:
    """``body`` with a strong ETag (and Last-Modified), answered 304 when the client has it."""
    response = make_response(body)
    response.mimetype = mimetype
    if last_modified is not None:
        response.last_modified = last_modified.replace(tzinfo=UTC, microsecond=0)
    response.add_etag()
    return response.make_conditional(request)


def _page_number() -> int:
    page = request.args.get("page", default=1, type=int)
    if page is None or page < 1 or page > 100_000:
        abort(404)
    return page


def release_path(release: Release) -> str:
    return url_for(
        "archive.release",
        language=release.language,
        release_id=release.id,
        slug=archive.slugify(release.title),
    )


def release_view(release: Release) -> dict[str, Any]:
    """What list templates show of a release."""
    return {
        "id": release.id,
        "title": release.title,
        "summary": release.summary,
        "dateline": press_dateline(release.dateline, release.published_at, release.language),
        "published_iso": release.published_at.date().isoformat(),
        "path": release_path(release),
    }


def _render(template: str, **context: Any) -> Response:
    return conditional(render_template(template, **context), "text/html", context.get("modified"))


# ---------------------------------------------------------------------------------------------
# Releases


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


def release_feed(language: str):
    """Atom feed of the newest releases of ``language``."""
    releases = archive.latest_releases(language, FEED_ENTRIES)
    updated = archive.last_change(releases) or datetime(2000, 1, 1)
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
    return _feed(
        language,
        title=_("News releases"),
        self_url=public_url_for("archive.release_feed", language=language),
        page_url=public_url_for("archive.releases", language=language),
        entries=entries,
        updated=updated,
    )


# ---------------------------------------------------------------------------------------------
# Digests


def digest_title(digest: Digest) -> str:
    """The digest's public name: "Lettre du 1er décembre 2026", "Newsletter of December 1, 2026"."""
    date = format_date(archive.digest_date(digest), digest.language)
    return _("Newsletter of %(date)s", date=date)


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


def digest_feed(language: str):
    digests = archive.latest_digests(language, FEED_ENTRIES)
    updated = archive.last_change(digests) or datetime(2000, 1, 1)
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
    return _feed(
        language,
        title=_("Newsletters"),
        self_url=public_url_for("archive.digest_feed", language=language),
        page_url=public_url_for("archive.digests", language=language),
        entries=entries,
        updated=updated,
    )


def _feed(language: str, *, title: str, self_url: str, page_url: str, entries, updated) -> Response:
    body = render_template(
        "archive/feed.xml",
        language=language,
        title=title,
        self_url=self_url,
        page_url=page_url,
        entries=entries,
        updated=updated,
        author=_("Newsroom"),
    )
    return conditional(body, "application/atom+xml", updated)


# ---------------------------------------------------------------------------------------------
# Sitemap and robots.txt


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


def with_default_language(alternates: dict[str, str]) -> dict[str, str]:
    """Alternates by language plus ``x-default`` (the site's first language) when there are
    several: what search engines show a reader whose language has no version."""
    if len(alternates) < 2:
        return alternates
    default = alternates.get(DEFAULT_LANGUAGE) or next(iter(alternates.values()))
    return alternates | {"x-default": default}


@blueprint.get("/robots.txt")
def robots():
    """Token pages (confirm, unsubscribe, preferences) and private areas stay out of indexes."""
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in PRIVATE_PATHS)]
    lines += ["", f"Sitemap: {public_url_for('archive.sitemap')}", ""]
    return conditional("\n".join(lines), "text/plain")


def atom_date(value: datetime) -> str:
    """RFC 3339 in UTC, as Atom wants."""
    return value.replace(tzinfo=UTC, microsecond=0).isoformat().replace("+00:00", "Z")


class PublicSessionInterface(SessionInterface):
    """The app's session interface, except that archive responses never save the session.

    Flask adds ``Vary: Cookie`` to any response whose request touched the session (Flask-Login
    looks at it after every request) and re-sends the cookie of a permanent session. Neither
    belongs on a page that is the same for everyone: a CDN would key or skip it per visitor.
    """

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_session(self, app, request):  # noqa: ANN001 - Flask's signature
        return self.inner.open_session(app, request)

    def make_null_session(self, app):  # noqa: ANN001
        return self.inner.make_null_session(app)

    def is_null_session(self, obj: object) -> bool:
        return self.inner.is_null_session(obj)

    def save_session(self, app, session, response) -> None:  # noqa: ANN001
        if request.blueprint == blueprint.name:
            return
        self.inner.save_session(app, session, response)


@blueprint.record_once
def _wrap_session_interface(state) -> None:  # noqa: ANN001
    app = state.app
    if not isinstance(app.session_interface, PublicSessionInterface):
        app.session_interface = PublicSessionInterface(app.session_interface)


_add_rules()
blueprint.add_app_template_filter(atom_date, "atom_date")
blueprint.add_app_template_global(LANGUAGE_NAMES, "language_names")
