"""The public archive: which releases and digests anyone may read, found how.

A release is public once its publication time has passed. A digest is public once it went out
(``sending`` or ``sent``): its web version shows what was sent, rebuilt from its releases, so
it never holds anything of one recipient. Search is PostgreSQL full-text search with the French
or English configuration (the GIN index of migration 0006 covers the same expression), and
``LIKE`` on SQLite.

No flask.request here; nothing here writes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, String, cast, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.orm import defer

from ..config import ARCHIVE_SEARCH_MAX_LENGTH, SLUG_MAX_LENGTH
from ..extensions import db
from ..models import RELEASE_SEARCH_EXPRESSION, Digest, DigestStatus, Release, utcnow
from .paging import Page, paginate
from .releases import sanitise_body

# Digests whose web version is public: they reached (or are reaching) their readers.
PUBLIC_DIGEST_STATUSES = (DigestStatus.SENDING, DigestStatus.SENT)
# Ids are BIGINT: a larger number in a URL names no row (and would overflow the driver).
MAX_ROW_ID = 2**63 - 1
# PostgreSQL text-search configuration per language.
SEARCH_CONFIGURATIONS = {"fr": "french", "en": "english"}


def slugify(title: str, fallback: str = "release") -> str:
    """A readable ASCII slug: "Conférence de presse" → "conference-de-presse"."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > SLUG_MAX_LENGTH:
        slug = slug[:SLUG_MAX_LENGTH].rsplit("-", 1)[0] or slug[:SLUG_MAX_LENGTH]
    return slug or fallback


def _public_releases(language: str, now: datetime) -> Select[tuple[Release]]:
    return (
        select(Release)
        .where(Release.language == language, Release.published_at <= now)
        .order_by(Release.published_at.desc(), Release.id.desc())
    )


# The indexed expression (``models.RELEASE_SEARCH_EXPRESSION``), named for tests and EXPLAIN.
SEARCH_EXPRESSION = RELEASE_SEARCH_EXPRESSION


def search_vector() -> ColumnElement:
    """The release's text as a ``tsvector`` in its language's configuration."""
    return literal_column(SEARCH_EXPRESSION)


def clean_query(text: str | None) -> str:
    """The search box's words, bounded and with control characters dropped."""
    if not text:
        return ""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:ARCHIVE_SEARCH_MAX_LENGTH]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matching(query: Select[tuple[Release]], language: str, text: str) -> Select[tuple[Release]]:
    if db.session.get_bind().dialect.name == "postgresql":
        configuration = SEARCH_CONFIGURATIONS.get(language, "simple")
        tsquery = func.websearch_to_tsquery(cast(configuration, REGCONFIG), text)
        return query.where(search_vector().op("@@")(tsquery))
    # SQLite: every word must appear somewhere (case-insensitive for ASCII, as LIKE is).
    for word in text.split():
        pattern = _like_pattern(word)
        query = query.where(
            or_(
                *(
                    column.like(pattern, escape="\\")
                    for column in (
                        Release.title,
                        Release.dateline,
                        Release.summary,
                        Release.body_html,
                    )
                )
            )
        )
    return query


@dataclass(frozen=True)
class ArchiveFilter:
    language: str
    year: int | None = None
    text: str = ""


def archive_page(
    where: ArchiveFilter, *, page: int, per_page: int, now: datetime | None = None
) -> Page[Release]:
    """One page of public releases, newest first, filtered by year and search words."""
    query = _public_releases(where.language, now or utcnow())
    if where.year is not None:
        query = query.where(
            Release.published_at >= datetime(where.year, 1, 1),
            Release.published_at < datetime(where.year + 1, 1, 1),
        )
    if where.text:
        query = _matching(query, where.language, where.text)
    return paginate(query, page=page, per_page=per_page)


def archive_years(language: str, now: datetime | None = None) -> list[int]:
    """Years that hold at least one public release of ``language``, newest first."""
    year = cast(func.extract("year", Release.published_at), String)
    rows = db.session.scalars(
        select(year)
        .where(Release.language == language, Release.published_at <= (now or utcnow()))
        .group_by(year)
    )
    return sorted({int(float(value)) for value in rows if value is not None}, reverse=True)


def public_release(release_id: int, now: datetime | None = None) -> Release | None:
    if not 0 < release_id <= MAX_ROW_ID:
        return None  # no such row, and the database would refuse the number
    release = db.session.get(Release, release_id)
    if release is None or release.published_at > (now or utcnow()):
        return None
    return release


def body_html(release: Release) -> str:
    """The release body, sanitised again on the way out: rows written by hand or by an older
    import never reach a page unsanitised."""
    return sanitise_body(release.body_html or "")


def translations(release: Release, now: datetime | None = None) -> dict[str, Release]:
    """The public translations of ``release`` by language (itself excluded).

    Translations point at one original; the original and every translation form the group.
    """
    root = release.translation_of_id or release.id
    rows = db.session.scalars(
        select(Release)
        .where(
            or_(Release.id == root, Release.translation_of_id == root),
            Release.id != release.id,
            Release.language != release.language,
            Release.published_at <= (now or utcnow()),
        )
        .order_by(Release.published_at.desc(), Release.id.desc())
    )
    found: dict[str, Release] = {}
    for row in rows:
        found.setdefault(row.language, row)
    return found


def latest_releases(language: str, limit: int, now: datetime | None = None) -> list[Release]:
    return list(db.session.scalars(_public_releases(language, now or utcnow()).limit(limit)))


def all_public_releases(
    now: datetime | None = None,
) -> list[tuple[int, str, str, datetime, int]]:
    """``(id, language, title, updated_at, group)`` of every public release, for the sitemap;
    ``group`` is the original's id, shared by the original and its translations."""
    rows = db.session.execute(
        select(
            Release.id,
            Release.language,
            Release.title,
            Release.updated_at,
            func.coalesce(Release.translation_of_id, Release.id),
        )
        .where(Release.published_at <= (now or utcnow()))
        .order_by(Release.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Digests


def digest_date(digest: Digest) -> datetime:
    """The date a digest is known by: when its run started (the date its email shows)."""
    return digest.started_at or digest.send_at


def _public_digests(language: str | None = None) -> Select[tuple[Digest]]:
    query = (
        select(Digest)
        .where(Digest.status.in_(PUBLIC_DIGEST_STATUSES), Digest.started_at.is_not(None))
        # The rendered message (tens of KB each) is for sending, never for these pages.
        .options(defer(Digest.rendered_message))
    )
    if language:
        query = query.where(Digest.language == language)
    return query.order_by(Digest.started_at.desc(), Digest.id.desc())


def public_digest(digest_id: int) -> Digest | None:
    if not 0 < digest_id <= MAX_ROW_ID:
        return None
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.status not in PUBLIC_DIGEST_STATUSES or not digest.started_at:
        return None
    return digest


def all_public_digests() -> list[tuple[int, str, datetime | None]]:
    """``(id, language, finished_at)`` of every public digest, for the sitemap."""
    rows = db.session.execute(
        select(Digest.id, Digest.language, Digest.finished_at)
        .where(Digest.status.in_(PUBLIC_DIGEST_STATUSES), Digest.started_at.is_not(None))
        .order_by(Digest.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def digests_page(language: str, *, page: int, per_page: int) -> Page[Digest]:
    return paginate(_public_digests(language), page=page, per_page=per_page)


def latest_digests(language: str | None, limit: int) -> list[Digest]:
    return list(db.session.scalars(_public_digests(language).limit(limit)))


def digest_releases(digest: Digest) -> list[Release]:
    """The releases a digest carried, in the order its email listed them (newest first)."""
    return sorted(digest.releases, key=lambda r: (r.published_at, r.id), reverse=True)


def last_change(items: list[Release] | list[Digest]) -> datetime | None:
    """When the newest of ``items`` last changed (for ``Last-Modified``)."""
    stamps = [
        getattr(item, "updated_at", None)
        or getattr(item, "finished_at", None)
        or getattr(item, "started_at", None)
        for item in items
    ]
    stamps = [stamp for stamp in stamps if stamp is not None]
    return max(stamps) if stamps else None
