"""Releases imported from RSS/Atom feeds, idempotently: a feed entry's id is the release's
``source_guid``, so a second import of the same feed changes nothing.

No commit here: the caller (a command, a job, a console view) owns the transaction.
"""

from __future__ import annotations

import calendar
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
from sqlalchemy import select

from ..config import (
    FEED_FETCH_TIMEOUT_SECONDS,
    FEED_MAX_BYTES,
    LANGUAGES,
    RELEASE_MAX_BODY_LENGTH,
    RELEASE_MAX_SUMMARY_LENGTH,
)
from ..extensions import db
from ..models import Release, utcnow
from .field_rules import MAX_TITLE_LENGTH, InvalidInput
from .releases import new_release_values, plain_text


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
        "title": plain_text(entry.get("title", "") or "")[:MAX_TITLE_LENGTH] or None,
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
            values = new_release_values(_entry_values(entry, feed_language, default_language))
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
