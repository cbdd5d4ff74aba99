"""``flask --app newsletter releases ...``: feed import and sample data."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from ..config import LANGUAGES
from ..domain.feed_import import FeedError, import_feed, read_feed_source
from ..extensions import db
from ..models import Release, utcnow

SAMPLE_RELEASES = [
    (
        "fr",
        "Bruxelles",
        "Lancement du nouveau portail de ressources vidéo",
        "Les journalistes accèdent désormais à nos vidéos en haute définition.",
        "<p>Les journalistes accèdent désormais à nos vidéos en "
        "<strong>haute définition</strong>.</p>",
    ),
    (
        "fr",
        "Liège",
        "Conférence de presse sur le budget annuel",
        "Présentation des grandes lignes du budget aux représentants des médias.",
        "<p>Présentation des grandes lignes du budget.</p>",
    ),
    (
        "en",
        "Brussels",
        "New video resource portal launched",
        "Journalists can now download our videos in high definition.",
        "<p>Journalists can now download our videos in <strong>high definition</strong>.</p>",
    ),
    (
        "en",
        "Ghent",
        "Press conference on the annual budget",
        "The main lines of the budget presented to the media.",
        "<p>The main lines of the budget presented to the media.</p>",
    ),
]


@click.group("releases", cls=AppGroup)
def releases_group() -> None:
    """News releases."""


@releases_group.command("seed-samples")
def seed_samples() -> None:
    """Load a few sample releases when there are none (used by ``make run``)."""
    if db.session.scalar(select(func.count(Release.id))):
        click.echo("releases already present; nothing loaded")
        return
    now = utcnow()
    added = []
    for index, (language, dateline, title, summary, body) in enumerate(SAMPLE_RELEASES):
        release = Release(
            language=language,
            dateline=dateline,
            title=title,
            summary=summary,
            body_html=body,
            url=None,
            published_at=now - timedelta(hours=index + 1),
        )
        db.session.add(release)
        added.append(release)
    db.session.flush()
    # The English samples translate the French ones, in the same order (archive pages link them).
    french = [release for release in added if release.language == "fr"]
    english = [release for release in added if release.language == "en"]
    for original, translation in zip(french, english, strict=False):
        translation.translation_of_id = original.id
    db.session.commit()
    click.echo(f"loaded {len(SAMPLE_RELEASES)} sample releases")


@releases_group.command("import")
@click.argument("source")
@click.option(
    "--language",
    type=click.Choice(LANGUAGES),
    default=LANGUAGES[0],
    show_default=True,
    help="Language of entries when the feed does not say.",
)
def import_command(source: str, language: str) -> None:
    """Import releases from an RSS/Atom feed URL or file (again: updates, never duplicates)."""
    try:
        report = import_feed(read_feed_source(source), default_language=language)
    except FeedError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    for reason in report.skipped:
        click.echo(f"skipped: {reason}", err=True)
    click.echo(report.describe())


def register(app: Flask) -> None:
    app.cli.add_command(releases_group)
