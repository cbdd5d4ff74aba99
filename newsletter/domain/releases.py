"""News releases: validated and sanitised on the way in, listed newest first, imported from
RSS/Atom feeds idempotently (a feed entry's id is the release's ``source_guid``).

No flask.request and no commit here: the caller (a view, a command, a job) owns the transaction.
"""

from __future__ import annotations

import calendar
import html
import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import nh3
from sqlalchemy import Select, select

from ..config import (
    ENCODED_WORD_PATTERN,
    FEED_FETCH_TIMEOUT_SECONDS,
    FEED_MAX_BYTES,
    LANGUAGES,
    RELEASE_MAX_BODY_LENGTH,
    RELEASE_MAX_SUMMARY_LENGTH,
)
from ..extensions import db
from ..models import Release, utcnow
from .paging import Page, paginate
from .wording import Message, translatable

# Titles and subjects become mail headers: RFC 2047 encoded-word syntax in them is refused.
ENCODED_WORD = re.compile(ENCODED_WORD_PATTERN)
ENCODED_WORD_REFUSED = translatable("Encoded-word syntax (=?...?=) is not allowed.")


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


class InvalidInput(ValueError):
    """Input that cannot be stored; ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = dict(fields)


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


def _text(
    data: Mapping[str, Any],
    name: str,
    errors: dict[str, str],
    *,
    max_length: int,
    required: bool = False,
    single_line: bool = True,
) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[name] = translatable("Required.")
        return None
    if not isinstance(value, str):
        errors[name] = translatable("Must be text.")
        return None
    value = value.strip()
    if len(value) > max_length:
        errors[name] = Message("At most %(count)d characters.", count=max_length)
        return None
    if single_line and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        errors[name] = translatable("Line breaks and control characters are not allowed.")
        return None
    if "\x00" in value:
        errors[name] = translatable("Control characters are not allowed.")
        return None
    if single_line and ENCODED_WORD.search(value):
        # Mail readers would decode it (and some Pythons fold its line breaks out raw).
        errors[name] = ENCODED_WORD_REFUSED
        return None
    return value


def _url(data: Mapping[str, Any], name: str, errors: dict[str, str]) -> str | None:
    value = _text(data, name, errors, max_length=2000)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        errors[name] = translatable("Must be an http or https URL.")
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        errors[name] = translatable("Must be an http or https URL.")
        return None
    return value


def parse_datetime(value: object) -> datetime:
    """ISO 8601 text to naive UTC (a time without zone is taken as UTC); ValueError if not."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value.strip()) <= 64:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError("not a date-time")
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
            raise ValueError("out of range") from None
    if not 1970 <= parsed.year <= 9999:
        raise ValueError("out of range")
    return parsed


def _language(data: Mapping[str, Any], errors: dict[str, str], *, required: bool) -> str | None:
    value = data.get("language")
    if value is None or value == "":
        if required:
            errors["language"] = Message(
                "Required: one of %(choices)s.", choices=", ".join(LANGUAGES)
            )
        return None
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        errors["language"] = Message("Choose one of: %(choices)s.", choices=", ".join(LANGUAGES))
        return None
    return value.strip().lower()


RELEASE_FIELDS = (
    "title", "dateline", "summary", "body", "url", "image_url", "video_url", "language",
    "published_at", "translation_of",
)  # fmt: skip


def clean_release(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate release input; returns model attributes. ``partial`` allows missing fields.

    Raises ``InvalidInput`` naming every bad field at once.
    """
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - set(RELEASE_FIELDS))
    for name in unknown:
        errors[name] = translatable("Unknown field.")
    values: dict[str, Any] = {}
    present = set(data) if partial else set(RELEASE_FIELDS)
    if "title" in present:
        values["title"] = _text(data, "title", errors, max_length=300, required=True)
    if "dateline" in present:
        values["dateline"] = _text(data, "dateline", errors, max_length=120)
    if "summary" in present:
        summary = _text(
            data, "summary", errors, max_length=RELEASE_MAX_SUMMARY_LENGTH, single_line=False
        )
        values["summary"] = plain_text(summary) if summary else ""
    if "body" in present:
        body = _text(data, "body", errors, max_length=RELEASE_MAX_BODY_LENGTH, single_line=False)
        values["body_html"] = sanitise_body(body) if body else ""
    for name in ("url", "image_url", "video_url"):
        if name in present:
            values[name] = _url(data, name, errors)
    if "language" in present:
        values["language"] = _language(data, errors, required=True)
    if "published_at" in present:
        raw = data.get("published_at")
        if raw is None or raw == "":
            if partial:
                errors["published_at"] = translatable("Required.")
            else:
                values["published_at"] = utcnow()
        else:
            try:
                values["published_at"] = parse_datetime(raw)
            except (ValueError, TypeError):
                errors["published_at"] = translatable(
                    "Must be an ISO 8601 date-time, e.g. 2025-03-01T09:00Z."
                )
    if "translation_of" in data:
        values["translation_of_id"] = _translation_of(data.get("translation_of"), errors)
    if errors:
        raise InvalidInput(errors)
    return values


def _translation_of(value: object, errors: dict[str, str]) -> int | None:
    """The id of the release this one translates (issue 13); null unlinks it."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors["translation_of"] = translatable("Must be the id of another release.")
        return None
    original = db.session.get(Release, value)
    if original is None:
        errors["translation_of"] = translatable("No release has this id.")
        return None
    # Point at the group's original, so a group never becomes a chain.
    return original.translation_of_id or original.id


def create_release(data: Mapping[str, Any]) -> Release:
    """Add a release from staff input (body sanitised); the caller commits."""
    release = Release(**clean_release(data))
    db.session.add(release)
    db.session.flush()
    return release


def update_release(release: Release, data: Mapping[str, Any]) -> Release:
    """Change the given fields of ``release``; the caller commits."""
    for name, value in clean_release(data, partial=True).items():
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


def release_as_dict(release: Release) -> dict[str, Any]:
    """The JSON shape of a release in the API."""
    return {
        "id": release.id,
        "title": release.title,
        "dateline": release.dateline,
        "summary": release.summary,
        "body": release.body_html,
        "url": release.url,
        "image_url": release.image_url,
        "video_url": release.video_url,
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


# ---------------------------------------------------------------------------------------------
# Feed import


@dataclass
class ImportReport:
    """What one feed import did, entry by entry."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text


class FeedError(ValueError):
    """The feed could not be read or parsed at all."""


def read_feed_source(source: str) -> bytes:
    """The bytes of a feed from an http(s) URL or a local file, bounded in size and time."""
    parts = urlsplit(source)
    try:
        if parts.scheme in ("http", "https"):
            request = urllib.request.Request(  # noqa: S310 - scheme checked just above
                source, headers={"User-Agent": "newsletter-feed-import/1.0"}
            )
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=FEED_FETCH_TIMEOUT_SECONDS
            ) as response:
                data = response.read(FEED_MAX_BYTES + 1)
        else:
            path = Path(parts.path if parts.scheme == "file" else source)
            with path.open("rb") as handle:
                data = handle.read(FEED_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise FeedError(f"cannot read {source}: {exc}") from exc
    if len(data) > FEED_MAX_BYTES:
        raise FeedError(f"{source} is larger than {FEED_MAX_BYTES} bytes")
    return data


def _entry_time(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            # feedparser gives UTC struct_time; timegm reads it as UTC.
            return datetime.fromtimestamp(calendar.timegm(value), UTC).replace(tzinfo=None)
    return None


def _entry_language(entry: Mapping[str, Any], feed_language: str | None, default: str) -> str:
    for detail_key in ("summary_detail", "title_detail"):
        detail = entry.get(detail_key) or {}
        if detail.get("language"):
            candidate = str(detail["language"])[:2].lower()
            if candidate in LANGUAGES:
                return candidate
    if feed_language and feed_language[:2].lower() in LANGUAGES:
        return feed_language[:2].lower()
    return default


def _entry_media(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """An image and a video URL from enclosures or Media RSS, when the entry has them."""
    image = video = None
    candidates: list[Mapping[str, Any]] = []
    candidates += entry.get("media_content") or []
    candidates += [link for link in entry.get("links") or [] if link.get("rel") == "enclosure"]
    for item in candidates:
        url = item.get("url") or item.get("href")
        kind = str(item.get("type") or item.get("medium") or "")
        if not url:
            continue
        if image is None and kind.startswith("image"):
            image = url
        elif video is None and kind.startswith("video"):
            video = url
    if image is None:
        thumbnails = entry.get("media_thumbnail") or []
        if thumbnails and thumbnails[0].get("url"):
            image = thumbnails[0]["url"]
    return image, video


def _entry_values(
    entry: Mapping[str, Any], feed_language: str | None, default_language: str
) -> dict[str, Any]:
    content = entry.get("content") or []
    body = content[0].get("value", "") if content else entry.get("summary", "")
    summary = entry.get("summary", "") or ""
    image, video = _entry_media(entry)
    return {
        "title": plain_text(entry.get("title", "") or "")[:300] or None,
        "summary": plain_text(summary)[:RELEASE_MAX_SUMMARY_LENGTH],
        "body": body[:RELEASE_MAX_BODY_LENGTH] if body else None,
        "url": entry.get("link") or None,
        "image_url": image,
        "video_url": video,
        "language": _entry_language(entry, feed_language, default_language),
        "published_at": _entry_time(entry) or utcnow(),
    }


def import_feed(data: bytes, *, default_language: str = LANGUAGES[0]) -> ImportReport:
    """Create or update one release per feed entry, keyed on the entry's id (or link).

    Running it again with the same feed changes nothing; an edited entry updates its release.
    The caller commits.
    """
    parsed = feedparser.parse(data)
    if not parsed.get("version") or (parsed.get("bozo") and not parsed.entries):
        reason = parsed.get("bozo_exception") or "no RSS or Atom document found"
        raise FeedError(f"not a feed: {reason}")
    feed_language = parsed.feed.get("language")
    report = ImportReport()
    by_guid: dict[str, dict[str, Any]] = {}
    for entry in parsed.entries:
        guid = entry.get("id") or entry.get("link")
        if not guid or len(guid) > 2000:
            report.skipped.append(f"{entry.get('title', '?')}: no id or link")
            continue
        try:
            values = clean_release(_entry_values(entry, feed_language, default_language))
        except InvalidInput as exc:
            report.skipped.append(f"{guid}: {exc}")
            continue
        by_guid[guid] = values
    existing = _releases_by_guid(by_guid)
    for guid, values in by_guid.items():
        release = existing.get(guid)
        if release is None:
            db.session.add(Release(source_guid=guid, **values))
            report.created += 1
            continue
        changed = {name: value for name, value in values.items() if getattr(release, name) != value}
        if changed:
            for name, value in changed.items():
                setattr(release, name, value)
            report.updated += 1
        else:
            report.unchanged += 1
    db.session.flush()
    return report


def _releases_by_guid(guids: Iterable[str]) -> dict[str, Release]:
    found: dict[str, Release] = {}
    guid_list = list(guids)
    for start in range(0, len(guid_list), 500):
        chunk = guid_list[start : start + 500]
        for release in db.session.scalars(select(Release).where(Release.source_guid.in_(chunk))):
            found[release.source_guid or ""] = release
    return found
