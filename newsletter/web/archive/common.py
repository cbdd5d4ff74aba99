"""What every archive answer shares: the blueprint, public caching, no session, the views of a
release and a digest that pages and feeds both show.

Every page here is the same for everyone: its language comes from its URL (never the
session), it reads no cookie and sets none, and it carries ``Cache-Control: public`` with an
``ETag`` (and ``Last-Modified`` when known) so a CDN can serve it and a reader's refresh costs
a 304. Absolute links (canonical, OpenGraph, feeds, sitemap) come from ``NEWSLETTER_PUBLIC_URL``,
never from the request's Host header, so a cached page cannot be poisoned through it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, g, make_response, render_template, request, url_for
from flask.sessions import SessionInterface
from flask_babel import gettext as _
from flask_babel import refresh

from ...config import DEFAULT_LANGUAGE, LANGUAGES, PUBLIC_CACHE_SECONDS
from ...dates import format_date, press_dateline
from ...domain import archive
from ...extensions import login_manager
from ...models import Digest, Release

blueprint = Blueprint("archive", __name__)

ARCHIVE_CSP = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'"
)




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


def digest_title(digest: Digest) -> str:
    """The digest's public name: "Lettre du 1er décembre 2026", "Newsletter of December 1, 2026"."""
    date = format_date(archive.digest_date(digest), digest.language)
    return _("Newsletter of %(date)s", date=date)


def with_default_language(alternates: dict[str, str]) -> dict[str, str]:
    """Alternates by language plus ``x-default`` (the site's first language) when there are
    several: what search engines show a reader whose language has no version."""
    if len(alternates) < 2:
        return alternates
    default = alternates.get(DEFAULT_LANGUAGE) or next(iter(alternates.values()))
    return alternates | {"x-default": default}


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
