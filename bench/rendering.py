"""Rendering: how many digests of 20 releases render per second, per language, and what the
per-recipient personalisation of a rendered digest costs next to it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from .common import Figure, bench_app, log
from .content import release_rows

RELEASES = 20


def _rate(function: Callable[[], object], minimum_seconds: float) -> float:
    """Calls per second of ``function`` over at least ``minimum_seconds`` (after one warm-up)."""
    function()
    calls = 0
    started = time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= minimum_seconds:
            return calls / elapsed


def _language_figures(language: str, seconds: float) -> list[Figure]:
    from newsletter.delivery.digests import (
        UnsubscribeLinks,
        message_id,
        release_context,
        render_digest_template,
    )
    from newsletter.domain.digest_composition import default_subject
    from newsletter.mail.prepared import PreparedMessage, Recipient
    from newsletter.mail.render import _environment
    from newsletter.models import Release, utcnow

    # Ids as stored rows have them: each item links to its release page.
    releases = [
        Release(id=index, **row)
        for index, row in enumerate(release_rows(language, RELEASES), start=1)
    ]
    now = utcnow()
    subject = default_subject(language, releases, now)

    def render() -> bytes:
        return render_digest_template(language, subject, releases, now)

    environment = _environment(language)

    def jinja_only() -> None:
        context = {
            "digest_subject": subject,
            "digest_date": now,
            "releases": [release_context(release) for release in releases],
            "unsubscribe_url": "https://news.example.org/unsubscribe/x",
            "preferences_url": "https://news.example.org/preferences/x",
            "web_url": "https://news.example.org/fr/lettres/1",
        }
        environment.get_template("digest.txt").render(**context)
        environment.get_template("digest.html").render(subject=subject, **context)

    template = render()
    rate = _rate(render, seconds)
    jinja_rate = _rate(jinja_only, seconds)
    log(f"render {language}: {rate:,.0f}/s (Jinja alone {jinja_rate:,.0f}/s)")

    prepared = PreparedMessage(template)
    links = UnsubscribeLinks()
    ids = itertools.count(1)

    def personalise() -> bytes:
        subscriber_id = next(ids)
        email_key = f"reader{subscriber_id}@example.org"
        return prepared.personalise(
            Recipient(
                address=email_key,
                unsubscribe_url=links.url(subscriber_id, email_key),
                message_id=message_id(1, subscriber_id, prepared),
            )
        )

    personalise_rate = _rate(personalise, seconds)
    log(f"personalise {language}: {personalise_rate:,.0f}/s")
    return [
        Figure(
            f"render digest, {RELEASES} releases, {language}",
            rate,
            "digests/s",
            jinja_rate,
            "Jinja alone (no CSS inlining, no MIME)",
            note=f"{len(template) / 1024:.1f} KB",
        ),
        Figure(
            f"personalise a rendered digest, {language}",
            personalise_rate,
            "msg/s",
            rate,
            "rendering each message",
            note="signed unsubscribe link + bytes join",
        ),
    ]


def rendering_figures(*, full: bool) -> list[Figure]:
    from newsletter.config import LANGUAGES

    seconds = 3.0 if full else 1.0
    figures: list[Figure] = []
    # No database is touched: releases are plain objects, links come from the configuration.
    with bench_app("sqlite://", "file:///nonexistent-bench-mail"):
        for language in LANGUAGES:
            figures += _language_figures(language, seconds)
    return figures
