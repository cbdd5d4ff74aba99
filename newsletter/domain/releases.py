"""News releases: checked (``ReleaseRequest``) and sanitised on the way in, listed newest
first. Feeds are imported by ``feed_import``.

No flask.request and no commit here: the caller (a view, a command, a job) owns the transaction.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import nh3
from sqlalchemy import Select, select

from ..extensions import db
from ..models import Release, utcnow
from .field_rules import InvalidInput, validate
from .paging import Page, paginate
from .requests import ReleaseChange, ReleaseRequest
from .wording import translatable

# Tags a release body may keep: text structure, links, images, tables. Scripts, styles, forms,
# iframes and event attributes are removed by nh3 (ammonia), whatever the source.
BODY_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "div", "dl", "dt",
    "em", "figcaption", "figure", "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre",
    "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
BODY_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def sanitise_body(body: str) -> str:
    """Release body HTML with only harmless tags, attributes and link schemes left."""
    return nh3.clean(
        body,
        tags=BODY_TAGS,
        attributes=BODY_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def plain_text(value: str) -> str:
    """Text of an HTML fragment (feeds often put markup in summaries), whitespace collapsed."""
    return " ".join(html.unescape(nh3.clean(value, tags=set())).split())


def _translation_group(release_id: int | None) -> int | None:
    """The id of the release this one translates (issue 13); null unlinks it."""
    if release_id is None:
        return None
    original = db.session.get(Release, release_id)
    if original is None:
        raise InvalidInput({"translation_of": translatable("No release has this id.")})
    # Point at the group's original, so a group never becomes a chain.
    return original.translation_of_id or original.id


def release_values(request: ReleaseRequest, names: set[str]) -> dict[str, Any]:
    """Model attributes of the ``names`` fields of a checked request (summary as plain text,
    body sanitised, no time meaning now)."""
    values: dict[str, Any] = {}
    for name in names:
        value = getattr(request, name)
        if name == "summary":
            values["summary"] = plain_text(value) if value else ""
        elif name == "body":
            values["body_html"] = sanitise_body(value) if value else ""
        elif name == "translation_of":
            values["translation_of_id"] = _translation_group(value)
        elif name == "published_at":
            values["published_at"] = value or utcnow()
        else:
            values[name] = value
    return values


def new_release_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Model attributes of a new release; ``InvalidInput`` names every bad field at once."""
    request = validate(ReleaseRequest, data)
    names = set(ReleaseRequest.model_fields) - {"translation_of"}
    return release_values(request, names | (request.model_fields_set & {"translation_of"}))


def create_release(data: Mapping[str, Any]) -> Release:
    """Add a release from staff input (body sanitised); the caller commits."""
    release = Release(**new_release_values(data))
    db.session.add(release)
    db.session.flush()
    return release


def update_release(release: Release, data: Mapping[str, Any]) -> Release:
    """Change the given fields of ``release``; the caller commits."""
    request = validate(ReleaseChange, data)
    for name, value in release_values(request, request.model_fields_set).items():
        setattr(release, name, value)
    db.session.flush()
    return release


def releases_query(language: str | None = None) -> Select[tuple[Release]]:
    """Releases newest first (ties broken by id so pages never overlap)."""
    query = select(Release).order_by(Release.published_at.desc(), Release.id.desc())
    if language:
        query = query.where(Release.language == language)
    return query


def list_releases(
    *, page: int = 1, per_page: int = 20, language: str | None = None
) -> Page[Release]:
    return paginate(releases_query(language), page=page, per_page=per_page)


# What a reader is shown of a release, wherever it appears (the API, a digest's item).
RELEASE_SHOWN_FIELDS = ("title", "dateline", "summary", "url", "image_url", "video_url")


def release_shown(release: Release) -> dict[str, Any]:
    """The fields of ``release`` a reader is shown, by name."""
    return {name: getattr(release, name) for name in RELEASE_SHOWN_FIELDS}


def release_as_dict(release: Release) -> dict[str, Any]:
    """The JSON shape of a release in the API."""
    return {
        "id": release.id,
        **release_shown(release),
        "body": release.body_html,
        "language": release.language,
        "published_at": iso(release.published_at),
        "source_guid": release.source_guid,
        "translation_of": release.translation_of_id,
        "created_at": iso(release.created_at),
        "updated_at": iso(release.updated_at),
    }


def iso(value: datetime | None) -> str | None:
    """Naive UTC as ISO 8601 with a ``Z``."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"
