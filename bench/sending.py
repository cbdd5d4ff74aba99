"""Digest sending: the service's pipeline against two baselines, on one counting SMTP server.

- service: a digest due now goes through the real pipeline (compose, render once, fan out in
  one statement, claim batches, personalise, send on ``SEND_CONNECTIONS`` connections, each
  outcome handed to the connection's ``OutcomeRecorder`` and committed as it comes); timed from
  the start of the run to the last message received.
- baseline A: raw ``smtplib`` pushing already-built messages of the same size down one open
  connection (the transport's limit: no database, no rendering).
- baseline B: the loop a Flask user would write: for each subscriber, render the template,
  build an ``EmailMessage`` and send it through one connection (no outcome recorded, which
  flatters it).
"""

from __future__ import annotations

import smtplib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from .common import Figure, bench_app, fresh_database, log
from .content import add_confirmed_subscribers, add_releases
from .smtp_counter import CountingSmtpServer

LANGUAGE = "fr"
RELEASES_PER_DIGEST = 10
SENDER = "news@example.org"


@dataclass
class SendResult:
    messages: int
    seconds: float
    message_bytes: float
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def prepare_database(recipients: int) -> None:
    """Subscribers and releases for one digest (inside an app context); commits."""
    from newsletter.extensions import db

    add_confirmed_subscribers(recipients, LANGUAGE)
    add_releases(LANGUAGE, RELEASES_PER_DIGEST)
    db.session.commit()


def service_send(server: CountingSmtpServer, recipients: int) -> SendResult:
    """Run one digest through the real pipeline; the app context must be active."""
    from flask import current_app

    from newsletter.delivery.digests import DigestSendingPool, run_digest
    from newsletter.domain.digests import create_digest
    from newsletter.extensions import db
    from newsletter.models import Digest

    digest = create_digest({"language": LANGUAGE})
    db.session.commit()
    digest_id = digest.id
    server.reset()
    cpu_started = time.process_time()
    started = time.monotonic()
    outcome = run_digest(digest_id)
    fanned_out = time.monotonic()
    stats = DigestSendingPool(current_app._get_current_object()).run_until_idle()
    recorded = time.monotonic()
    cpu = time.process_time() - cpu_started
    last = server.wait_for(recipients, timeout=max(60.0, recipients / 50))
    db.session.expire_all()
    row = db.session.get(Digest, digest_id)
    if outcome.recipients != recipients or row.sent != recipients or row.status != "sent":
        raise AssertionError(
            f"digest {digest_id}: {outcome}, status {row.status}, sent {row.sent}/{recipients}"
        )
    if server.count != recipients:
        raise AssertionError(f"server received {server.count} messages, expected {recipients}")
    return SendResult(
        messages=recipients,
        seconds=last - started,
        message_bytes=server.bytes_received / recipients,
        detail=(
            f"compose+render+fan-out {fanned_out - started:.2f}s, "
            f"all recorded {recorded - started:.2f}s, claimed {stats.claimed}, "
            f"sender CPU {cpu / recipients * 1e6:.0f} us/msg"
        ),
    )


def _subscriber_rows(limit: int) -> list[tuple[int, str, str, str | None]]:
    from newsletter.extensions import db
    from newsletter.models import Subscriber

    return list(
        db.session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.email_key, Subscriber.name)
            .where(Subscriber.status == "confirmed", Subscriber.language == LANGUAGE)
            .order_by(Subscriber.id)
            .limit(limit)
        ).all()
    )


def _latest_releases() -> list:
    from newsletter.extensions import db
    from newsletter.models import Release

    return list(
        db.session.scalars(
            select(Release)
            .where(Release.language == LANGUAGE)
            .order_by(Release.published_at.desc())
            .limit(RELEASES_PER_DIGEST)
        )
    )


def naive_message(subscriber: tuple, releases: list, subject: str) -> bytes:
    """What a Flask user writes per recipient: render both templates, build, serialise."""
    from flask import current_app

    from newsletter.delivery.digests import release_context
    from newsletter.delivery.links import digest_page_url
    from newsletter.delivery.subscriptions import newsletter_headers
    from newsletter.mail.message import message_bytes
    from newsletter.mail.render import render_email
    from newsletter.models import utcnow
    from tests.support.reference_mail import build_message, recipient_header

    subscriber_id, address, email_key, name = subscriber
    headers, unsubscribe_url, _token = newsletter_headers(subscriber_id, email_key)
    rendered = render_email(
        "digest",
        LANGUAGE,
        digest_subject=subject,
        digest_date=utcnow(),
        releases=[release_context(r) for r in releases],
        unsubscribe_url=unsubscribe_url,
        # What a Flask user would add per recipient too: the preferences link, the web version.
        preferences_url=unsubscribe_url.replace("/unsubscribe/", "/preferences/"),
        web_url=digest_page_url(1, LANGUAGE),
    )
    message = build_message(
        rendered,
        mail_from=current_app.config["MAIL_FROM"],
        to=recipient_header(address, name),
        extra_headers=headers,
    )
    return message_bytes(message)


def baseline_naive_loop(server: CountingSmtpServer, recipients: int) -> SendResult:
    """Baseline B: render + build + send per recipient, one connection."""
    from newsletter.domain.digest_composition import default_subject
    from newsletter.models import utcnow

    subscribers = _subscriber_rows(recipients)
    releases = _latest_releases()
    subject = default_subject(LANGUAGE, releases, utcnow())
    server.reset()
    started = time.monotonic()
    sizes = 0
    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as connection:
        for subscriber in subscribers:
            data = naive_message(subscriber, releases, subject)
            sizes += len(data)
            connection.sendmail(SENDER, [subscriber[1]], data)
        last = server.wait_for(len(subscribers))
    return SendResult(len(subscribers), last - started, sizes / len(subscribers))


def prebuilt_messages(count: int) -> list[tuple[str, bytes]]:
    """Distinct finished messages (the service's own bytes), built before the clock starts."""
    from newsletter.delivery.digests import UnsubscribeLinks, message_id, render_digest_template
    from newsletter.domain.digest_composition import default_subject
    from newsletter.mail.prepared import PreparedMessage, Recipient
    from newsletter.models import utcnow

    releases = _latest_releases()
    prepared = PreparedMessage(
        render_digest_template(
            LANGUAGE, default_subject(LANGUAGE, releases, utcnow()), releases, utcnow()
        )
    )
    links = UnsubscribeLinks()
    messages = []
    for subscriber_id, address, email_key, name in _subscriber_rows(count):
        data = prepared.personalise(
            Recipient(
                address=address,
                name=name,
                unsubscribe_url=links.url(subscriber_id, email_key),
                message_id=message_id(0, subscriber_id, prepared),
            )
        )
        messages.append((address, data))
    return messages


def baseline_raw_smtplib(
    server: CountingSmtpServer, recipients: int, connections: int = 1
) -> SendResult:
    """Baseline A: pre-built messages pushed down one open connection (or ``connections``
    in parallel threads, to find the counting server's own ceiling)."""
    pool = prebuilt_messages(min(recipients, 2000))
    server.reset()
    share = recipients // connections
    opened = [smtplib.SMTP("127.0.0.1", server.port, timeout=60) for _ in range(connections)]

    def push(connection: smtplib.SMTP, offset: int) -> None:
        for index in range(offset, offset + share):
            address, data = pool[index % len(pool)]
            connection.sendmail(SENDER, [address], data)

    try:
        for connection in opened:
            connection.ehlo()
        started = time.monotonic()
        threads = [
            threading.Thread(target=push, args=(connection, number * share))
            for number, connection in enumerate(opened)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        last = server.wait_for(share * connections)
    finally:
        for connection in opened:
            connection.quit()
    size = sum(len(data) for _, data in pool) / len(pool)
    return SendResult(share * connections, last - started, size)


@dataclass
class SendingRun:
    """The service and its baselines, measured back to back on one database."""

    # One (service, raw smtplib) pair a round, measured one right after the other.
    pairs: list[tuple[SendResult, SendResult]]
    naive: SendResult
    # Raw smtplib on several connections at once: the counting server's own ceiling.
    ceiling: SendResult | None = None

    @property
    def median_pair(self) -> tuple[SendResult, SendResult]:
        """The round whose service/raw ratio is the median: one noisy round (a neighbour's
        burst of CPU during either half) does not make the figure."""
        ranked = sorted(self.pairs, key=lambda pair: pair[0].rate / pair[1].rate)
        return ranked[len(ranked) // 2]

    @property
    def ratios(self) -> list[float]:
        return [service.rate / raw.rate for service, raw in self.pairs]


CEILING_CONNECTIONS = 4


def measure_database(
    kind: str,
    server: CountingSmtpServer,
    recipients: int,
    naive_recipients: int,
    *,
    rounds: int = 1,
    with_ceiling: bool = False,
) -> SendingRun:
    """``rounds`` of the service then baseline A, baseline B once (and the server's ceiling),
    on a fresh database."""
    pairs: list[tuple[SendResult, SendResult]] = []
    with fresh_database(kind) as url, bench_app(url, server.url):
        prepare_database(recipients)
        for number in range(1, rounds + 1):
            if number > 1:
                # Each digest takes only releases no digest of its language has had yet.
                from newsletter.extensions import db

                add_releases(LANGUAGE, RELEASES_PER_DIGEST)
                db.session.commit()
            log(f"{kind}: round {number}/{rounds}: service sending {recipients:,} digests")
            service = service_send(server, recipients)
            log(f"{kind}: service {service.rate:,.0f} msg/s ({service.detail})")
            raw = baseline_raw_smtplib(server, recipients)
            log(f"{kind}: baseline A (raw smtplib) {raw.rate:,.0f} msg/s")
            pairs.append((service, raw))
        naive = baseline_naive_loop(server, naive_recipients)
        log(f"{kind}: baseline B (render+send loop) {naive.rate:,.0f} msg/s")
        ceiling = None
        if with_ceiling:
            ceiling = baseline_raw_smtplib(server, recipients, connections=CEILING_CONNECTIONS)
            log(f"server ceiling: {ceiling.rate:,.0f} msg/s on {CEILING_CONNECTIONS} connections")
    return SendingRun(pairs, naive, ceiling)


def sending_figures(*, full: bool, databases: list[str]) -> list[Figure]:
    recipients = 20_000 if full else 5_000
    naive_recipients = 5_000 if full else 1_000
    # The quick runs are short enough for a neighbour's noise to move one of them: three
    # rounds, the median counted. The full runs are long enough to average it out.
    rounds = 1 if full else 3
    figures: list[Figure] = []
    with CountingSmtpServer() as server:
        for index, kind in enumerate(databases):
            run = measure_database(
                kind, server, recipients, naive_recipients, rounds=rounds, with_ceiling=index == 0
            )
            service, raw = run.median_pair
            label = "SQLite" if kind == "sqlite" else "PostgreSQL"
            size = f"{recipients:,} recipients, {service.message_bytes / 1024:.1f} KB/message"
            if rounds > 1:
                size += ", median of " + " ".join(f"{ratio:.2f}" for ratio in run.ratios)
            figures += [
                Figure(
                    f"send digest, {label}: rate vs raw smtplib",
                    service.rate,
                    "msg/s",
                    raw.rate,
                    "A: raw smtplib, 1 connection",
                    goal=">= 0.9x",
                    note=size,
                ),
                Figure(
                    f"send digest, {label}: rate vs render+send loop",
                    service.rate,
                    "msg/s",
                    run.naive.rate,
                    f"B: Flask loop, {run.naive.messages:,} msgs",
                    goal=">= 2x",
                ),
            ]
            if run.ceiling is not None:
                # Not a goal: what the counting server takes at most, to read the ratios by.
                figures.append(
                    Figure(
                        "counting SMTP server's ceiling: raw smtplib, "
                        f"{CEILING_CONNECTIONS} connections",
                        run.ceiling.rate,
                        "msg/s",
                        raw.rate,
                        "A: raw smtplib, 1 connection",
                        note="for reference",
                    )
                )
    return figures


def scaling_figures(*, full: bool) -> list[Figure]:
    """Sending time at growing sizes on PostgreSQL: should grow linearly."""
    sizes = [1_000, 10_000, 100_000] if full else [1_000, 5_000]
    figures: list[Figure] = []
    first: SendResult | None = None
    with CountingSmtpServer() as server:
        for size in sizes:
            with fresh_database("postgres") as url, bench_app(url, server.url):
                prepare_database(size)
                log(f"scaling: sending {size:,}")
                result = service_send(server, size)
            log(f"scaling: {size:,} in {result.seconds:.2f}s ({result.rate:,.0f} msg/s)")
            first = first or result
            # Baseline: the smallest run's time scaled linearly to this size.
            linear = first.seconds * size / first.messages
            figures.append(
                Figure(
                    f"scaling: send {size:,} (PostgreSQL)",
                    result.seconds,
                    "s",
                    linear,
                    f"linear from {first.messages:,}",
                    goal="~1x (linear)",
                    note=f"{result.seconds / size * 1e6:,.0f} us/msg",
                    better="lower",
                )
            )
    return figures
