"""What goes into a digest: the releases of its language not yet carried by another one, and
its default subject. Composition runs under a per-language lock, so two digests never carry the
same release.

No flask.request here; the caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, insert, select, text

from ..config import DIGEST_MAX_RELEASES
from ..dates import format_date
from ..extensions import db
from ..models import Digest, DigestStatus, Release, release_carriers
from .field_rules import MAX_SUBJECT_LENGTH


def last_sent_at(language: str) -> datetime | None:
    """When the releases of the last digest sent in ``language`` were gathered."""
    return db.session.scalar(
        select(func.max(Digest.started_at)).where(
            Digest.language == language, Digest.status == DigestStatus.SENT
        )
    )


def _carried_in(language: str):
    """Releases already carried by a digest of ``language`` (recorded at compose time)."""
    return exists().where(
        release_carriers.c.language == language, release_carriers.c.release_id == Release.id
    )


def first_composed_at(language: str) -> datetime | None:
    """When the first digest of ``language`` that carried anything was composed."""
    return db.session.scalar(
        select(func.min(Digest.started_at))
        .select_from(release_carriers)
        .join(Digest, Digest.id == release_carriers.c.digest_id)
        .where(release_carriers.c.language == language)
    )


def releases_for_digest(
    language: str, now: datetime, *, first_window_days: int, limit: int = DIGEST_MAX_RELEASES
) -> list[Release]:
    """Releases of ``language`` not yet carried by any digest of that language (newest first).

    Chosen by "not yet carried", not by time windows: a release imported late with an older
    date (a feed poll, a backdated entry) goes into the next digest, and what a cap leaves out
    waits for the next one (the oldest go first, so nothing waits forever). The window only
    bounds the backlog: the first digest of a language looks ``first_window_days`` back, and
    later ones take anything published since then or created since the first digest.
    """
    window = timedelta(days=first_window_days)
    began = first_composed_at(language)
    if began is None:
        recent = Release.published_at > now - window
    else:
        recent = (Release.published_at > began - window) | (Release.created_at > began)
    query = (
        select(Release)
        .where(
            Release.language == language,
            Release.published_at <= now,
            recent,
            ~_carried_in(language),
        )
        .order_by(Release.published_at.asc(), Release.id.asc())
        .limit(limit)
    )
    chosen = list(db.session.scalars(query))
    chosen.sort(key=lambda release: (release.published_at, release.id), reverse=True)
    return chosen


def lock_composition(language: str) -> None:
    """At most one digest of a language composes at a time (held until the transaction ends).

    PostgreSQL: a transaction-scoped advisory lock per language. SQLite: the caller's claim of
    the digest row already holds the database's single write lock until commit.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"newsletter-digest-compose:{language}"},
        )


def default_subject(language: str, releases: list[Release], when: datetime) -> str:
    """The date in the digest's language, then the top headline."""
    date = format_date(when, language)
    if not releases:
        return date
    subject = f"{date} — {releases[0].title}"
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[: MAX_SUBJECT_LENGTH - 1] + "…"
    return subject


def compose_digest(digest: Digest, now: datetime, *, first_window_days: int) -> list[Release]:
    """Attach the releases due in ``digest`` and settle its subject; returns the releases.

    Each release taken is recorded in ``release_carriers`` in the same transaction, under the
    language's composition lock, so no other digest of the language can take it again.
    """
    lock_composition(digest.language)
    releases = releases_for_digest(digest.language, now, first_window_days=first_window_days)
    digest.releases = releases
    if releases:
        db.session.flush()
        db.session.execute(
            insert(release_carriers),
            [
                {"language": digest.language, "release_id": release.id, "digest_id": digest.id}
                for release in releases
            ],
        )
    if not digest.subject:
        digest.subject = default_subject(digest.language, releases, now)
    return releases
