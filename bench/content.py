"""Realistic content: news releases with titles, datelines, summaries and bodies, and
confirmed subscribers inserted by one set-based statement (no Python loop per row)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from newsletter.extensions import db
from newsletter.models import Release, utcnow

_TOPICS = {
    "fr": [
        ("Le gouvernement adopte le plan de mobilité 2030", "Bruxelles"),
        ("Nouvelle aide aux PME pour la transition énergétique", "Namur"),
        ("Rénovation des écoles : 120 projets retenus", "Liège"),
        ("Le musée royal rouvre ses salles après deux ans de travaux", "Bruxelles"),
        ("Accord sur la réforme des allocations familiales", "Mons"),
        ("Inondations : le fonds d'indemnisation est ouvert", "Verviers"),
        ("Un million d'arbres plantés le long des routes régionales", "Arlon"),
        ("La recherche spatiale reçoit un nouveau financement", "Louvain-la-Neuve"),
        ("Vaccination : la campagne d'automne commence lundi", "Charleroi"),
        ("Le port fluvial double sa capacité de conteneurs", "Liège"),
    ],
    "en": [
        ("Government adopts the 2030 mobility plan", "Brussels"),
        ("New support for small firms in the energy transition", "Namur"),
        ("School renovation: 120 projects selected", "Liège"),
        ("Royal museum reopens its galleries after two years of works", "Brussels"),
        ("Agreement reached on the family allowance reform", "Mons"),
        ("Floods: the compensation fund is open", "Verviers"),
        ("One million trees planted along regional roads", "Arlon"),
        ("Space research receives new funding", "Louvain-la-Neuve"),
        ("Vaccination: the autumn campaign starts on Monday", "Charleroi"),
        ("River port doubles its container capacity", "Liège"),
    ],
}

_SUMMARY = {
    "fr": (
        "Le texte, présenté ce matin, prévoit un calendrier précis et un budget "
        "pluriannuel. Les premières mesures entrent en vigueur le 1er janvier."
    ),
    "en": (
        "The text, presented this morning, sets out a precise timetable and a multi-year "
        "budget. The first measures take effect on 1 January."
    ),
}

_BODY_PARAGRAPH = {
    "fr": (
        "<p>Selon les chiffres communiqués par l'administration, l'effort représente plus de "
        "<strong>250 millions d'euros</strong> sur cinq ans. Les détails figurent dans le "
        '<a href="https://news.example.org/documents/plan.pdf">document de synthèse</a>.</p>'
    ),
    "en": (
        "<p>According to figures released by the administration, the effort amounts to more "
        "than <strong>EUR 250 million</strong> over five years. Details are in the "
        '<a href="https://news.example.org/documents/plan.pdf">summary document</a>.</p>'
    ),
}


def release_rows(language: str, count: int) -> list[dict]:
    """``count`` releases in ``language``, newest first, published within the last day."""
    topics = _TOPICS[language]
    now = utcnow()
    rows = []
    for index in range(count):
        title, dateline = topics[index % len(topics)]
        if index >= len(topics):
            title = f"{title} ({index // len(topics) + 1})"
        rows.append(
            {
                "title": title,
                "dateline": dateline,
                "summary": _SUMMARY[language],
                "body_html": _BODY_PARAGRAPH[language] * 4,
                "url": f"https://news.example.org/{language}/releases/{index + 1}",
                # Some releases come with a photo, most do not.
                "image_url": (
                    f"https://news.example.org/media/{index + 1}.jpg" if index % 3 == 0 else None
                ),
                "language": language,
                "published_at": now - timedelta(minutes=30 + 45 * index),
            }
        )
    return rows


def add_releases(language: str, count: int) -> list[Release]:
    """Insert ``count`` releases (the caller commits)."""
    releases = [
        Release(source_guid=None, created_at=utcnow(), updated_at=utcnow(), **row)
        for row in release_rows(language, count)
    ]
    db.session.add_all(releases)
    db.session.flush()
    return releases


def add_confirmed_subscribers(count: int, language: str = "fr", *, first: int = 1) -> None:
    """Insert ``count`` confirmed subscribers in one statement (the caller commits).

    PostgreSQL: ``INSERT ... SELECT generate_series``; SQLite: a recursive CTE.
    """
    last = first + count - 1
    columns = (
        "email, email_key, name, language, status, created_at, consent_at, consent_source, "
        "confirmed_at, hard_bounces"
    )
    values = (
        "'reader' || g || '@example.org', 'reader' || g || '@example.org', NULL, :language, "
        "'confirmed', :now, :now, 'import', :now, 0"
    )
    params = {"language": language, "now": utcnow(), "first": first, "last": last}
    if db.engine.dialect.name == "postgresql":
        statement = (
            f"INSERT INTO subscribers ({columns}) "
            f"SELECT {values} FROM generate_series(CAST(:first AS bigint), :last) AS g"
        )
    else:
        statement = (
            f"INSERT INTO subscribers ({columns}) "
            "WITH RECURSIVE seq(g) AS (SELECT :first UNION ALL SELECT g + 1 FROM seq "
            f"WHERE g < :last) SELECT {values} FROM seq"
        )
    db.session.execute(text(statement), params)
