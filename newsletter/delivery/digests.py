"""Digest runs: compose, render once, fan out in one statement, and send at scale.

A run moves a digest scheduled → sending with a compare-and-set, gathers its releases, renders
one message template (``mail.prepared``), and writes one ``deliveries`` row per confirmed
subscriber of its language with a single ``INSERT ... SELECT`` (nothing per subscriber passes
through Python, so memory stays flat at any size).

Workers then claim batches of deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, with a
lease for crash recovery), drop those whose subscriber is no longer confirmed, personalise the
template per recipient, push the bytes down persistent SMTP connections, and record outcomes a
batch at a time. A delivery is marked sent only after the server accepted it: a crash can at
worst re-send a batch, never skip anyone.
"""

from __future__ import annotations

import email
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

from flask import Flask, current_app
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    bindparam,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)

from ..config import (
    DELIVERY_MAX_ATTEMPTS,
    DELIVERY_OUTAGE_PAUSE_SECONDS,
    HARD_BOUNCES_BEFORE_BOUNCED,
)
from ..domain.digests import (
    claim_due_digest,
    compose_digest,
    default_subject,
    finish_digest,
    releases_for_digest,
)
from ..domain.subscriptions import unsubscribe_token
from ..domain.webhooks import emit_event
from ..extensions import db
from ..mail.bulk import open_bulk_transport
from ..mail.message import envelope_sender
from ..mail.prepared import UNSUBSCRIBE_MARKER, PreparedMessage, Recipient, build_template
from ..mail.render import render_email
from ..mail.transport import DeliveryError, Transport
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Release,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from .links import public_url_for, token_url
from .outbox import queue_message
from .signing import app_signer
from .subscriptions import newsletter_headers

log = logging.getLogger(__name__)

RETRY_CAP = timedelta(hours=1)
# How often a process puts back deliveries whose worker died (their lease lapsed).
LEASE_SWEEP_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------
# Rendering


def release_context(release: Release) -> dict[str, object]:
    """What the digest templates know of a release."""
    return {
        "title": release.title,
        "dateline": release.dateline,
        "summary": release.summary,
        "url": release.url,
        "image_url": release.image_url,
        "video_url": release.video_url,
        "published_at": release.published_at,
    }


def render_digest_template(
    language: str, subject: str, releases: list[Release], when: datetime
) -> bytes:
    """The digest serialised once, with slots for what differs per recipient."""
    rendered = render_email(
        "digest",
        language,
        digest_subject=subject,
        digest_date=when,
        releases=[release_context(release) for release in releases],
        unsubscribe_url=UNSUBSCRIBE_MARKER,
    )
    headers, _url, _token = newsletter_headers(0, "")
    mailto = headers["List-Unsubscribe"].split(",", 1)[1].strip(" <>")
    return build_template(
        rendered,
        mail_from=current_app.config["MAIL_FROM"],
        headers=headers,
        mailto_unsubscribe=mailto,
    )


class UnsubscribeLinks:
    """Per-recipient unsubscribe URLs: one signer for a whole batch."""

    def __init__(self) -> None:
        self.signer = app_signer()

    def url(self, subscriber_id: int, email_key: str) -> str:
        return token_url(
            "public.unsubscribe", unsubscribe_token(self.signer, subscriber_id, email_key)
        )


def message_id(digest_id: int, subscriber_id: int, prepared: PreparedMessage) -> str:
    """Stable per digest and subscriber, so a re-send after a crash carries the same id."""
    return f"<digest-{digest_id}.{subscriber_id}.{prepared.nonce}@{prepared.domain}>"


# ---------------------------------------------------------------------------------------------
# A run: scheduled → sending, compose, render, fan out


@dataclass(frozen=True)
class RunOutcome:
    digest_id: int
    result: str  # not_due, skipped, sending, sent (nobody to send to), failed
    recipients: int = 0


def fan_out(digest_id: int, language: str, now: datetime) -> int:
    """One delivery per confirmed subscriber of ``language``, in one INSERT ... SELECT."""
    recipients = select(
        literal(digest_id, BigInteger),
        Subscriber.id,
        literal(DeliveryStatus.QUEUED.value, String),
        literal(0, Integer),
        literal(now, DateTime),
        literal(now, DateTime),
    ).where(Subscriber.status == SubscriberStatus.CONFIRMED, Subscriber.language == language)
    result = db.session.execute(
        insert(Delivery)
        .from_select(
            ["digest_id", "subscriber_id", "status", "attempts", "next_attempt_at", "updated_at"],
            recipients,
        )
        .execution_options(preserve_rowcount=True)  # SQLAlchemy 2 gives -1 for INSERT without it
    )
    return result.rowcount


def run_digest(digest_id: int, now: datetime | None = None) -> RunOutcome:
    """Start a due digest; commits. Safe to call from several schedulers at once."""
    now = now or utcnow()
    if not claim_due_digest(digest_id, now):
        db.session.rollback()
        return RunOutcome(digest_id, "not_due")
    try:
        digest = db.session.execute(
            select(Digest).where(Digest.id == digest_id).execution_options(populate_existing=True)
        ).scalar_one()
        releases = compose_digest(
            digest, now, first_window_days=current_app.config["DIGEST_FIRST_WINDOW_DAYS"]
        )
        if not releases:
            digest.status = DigestStatus.SKIPPED
            digest.finished_at = now
            db.session.commit()
            log.info("digest %s skipped: no new releases in %s", digest_id, digest.language)
            return RunOutcome(digest_id, "skipped")
        digest.rendered_message = render_digest_template(
            digest.language, digest.subject or "", releases, now
        )
        db.session.flush()
        digest.recipients = fan_out(digest_id, digest.language, now)
        if digest.recipients == 0:
            digest.status = DigestStatus.SENT
            digest.finished_at = now
            emit_event("digest.sent", digest_event_data(digest_id, 0, 0, 0))
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.exception("digest %s could not start", digest_id)
        finish_digest(digest_id, DigestStatus.FAILED, now, f"error: {exc}"[:300])
        db.session.commit()
        return RunOutcome(digest_id, "failed")
    log.info("digest %s: %s recipients", digest_id, digest.recipients)
    return RunOutcome(
        digest_id, "sending" if digest.recipients else "sent", recipients=digest.recipients
    )


# ---------------------------------------------------------------------------------------------
# Claiming


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    digest_id: int
    subscriber_id: int
    attempts: int
    email: str
    name: str | None
    email_key: str


def active_digest_ids() -> list[int]:
    """Digests being sent and not paused (a handful at most)."""
    return list(
        db.session.scalars(
            select(Digest.id)
            .where(Digest.status == DigestStatus.SENDING, Digest.paused.is_(False))
            .order_by(Digest.id)
        )
    )


def release_expired_leases(now: datetime) -> int:
    """Deliveries claimed by a worker that died: back to the queue (the try stays counted)."""
    count = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_expires_at < now)
        .values(status=DeliveryStatus.QUEUED, next_attempt_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return count


def _claim_from(digest_id: int, limit: int, now: datetime, lease: timedelta) -> list:
    due = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryStatus.QUEUED,
            Delivery.digest_id == digest_id,
            Delivery.next_attempt_at <= now,
        )
        # No ORDER BY: any due rows will do, and the (status, digest_id) index yields them
        # without sorting the whole queue on every claim.
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            status=DeliveryStatus.SENDING,
            lease_expires_at=now + lease,
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    ).all()


def claim_deliveries(
    limit: int, *, lease: timedelta, now: datetime | None = None
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries of one sending digest, and commit the claim.

    Subscribers no longer confirmed (they left, or bounced, since the fan-out) are dropped
    here: their deliveries are recorded ``cancelled`` and nothing is sent to them.
    """
    now = now or utcnow()
    for digest_id in active_digest_ids():
        rows = _claim_from(digest_id, limit, now, lease)
        if not rows:
            db.session.commit()
            finish_if_complete(digest_id, now)
            continue
        by_subscriber = {row[1]: row for row in rows}
        subscribers = db.session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.email_key,
                Subscriber.status,
            ).where(Subscriber.id.in_(list(by_subscriber)))
        ).all()
        claimed: list[ClaimedDelivery] = []
        dropped: list[int] = []
        for subscriber_id, address, name, email_key, status in subscribers:
            delivery_id, _, attempts = by_subscriber.pop(subscriber_id)
            if status != SubscriberStatus.CONFIRMED:
                dropped.append(delivery_id)
                continue
            claimed.append(
                ClaimedDelivery(
                    delivery_id, digest_id, subscriber_id, attempts, address, name, email_key
                )
            )
        dropped += [row[0] for row in by_subscriber.values()]  # subscriber deleted
        if dropped:
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(dropped))
                .values(
                    status=DeliveryStatus.CANCELLED,
                    smtp_response="subscriber no longer confirmed",
                    lease_expires_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        if claimed:
            claimed.sort(key=lambda delivery: delivery.id)
            return claimed
        finish_if_complete(digest_id, now)
    return []


def finish_if_complete(digest_id: int, now: datetime | None = None) -> bool:
    """Mark a sending digest ``sent`` once none of its deliveries is queued or in flight."""
    now = now or utcnow()
    pending = db.session.scalar(
        select(Delivery.id)
        .where(
            Delivery.digest_id == digest_id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
        )
        .limit(1)
    )
    if pending is not None:
        return False
    counts = dict(
        db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.digest_id == digest_id)
            .group_by(Delivery.status)
        ).all()
    )
    sent = counts.get(DeliveryStatus.SENT, 0)
    failed = counts.get(DeliveryStatus.FAILED, 0)
    everything_failed = failed > 0 and sent == 0
    result = db.session.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING)
        .values(
            status=DigestStatus.FAILED if everything_failed else DigestStatus.SENT,
            failure_reason="every delivery failed" if everything_failed else None,
            sent=sent,
            failed=failed,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount and not everything_failed:
        recipients = db.session.scalar(select(Digest.recipients).where(Digest.id == digest_id))
        emit_event("digest.sent", digest_event_data(digest_id, recipients or 0, sent, failed))
    db.session.commit()
    if result.rowcount:
        log.info("digest %s finished: %s sent, %s failed", digest_id, sent, failed)
    return bool(result.rowcount)


# ---------------------------------------------------------------------------------------------
# Recording outcomes, a batch at a time


@dataclass
class BatchOutcomes:
    sent: list[tuple[ClaimedDelivery, str]] = field(default_factory=list)
    failed: list[tuple[ClaimedDelivery, DeliveryError]] = field(default_factory=list)
    # Never tried because the server was out of reach: back to the queue, try not counted.
    untried: list[ClaimedDelivery] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.untried)


def retry_delay(attempts: int, base_seconds: int) -> timedelta:
    """base, 2×base, 4×base ... after the first, second, third failed try; capped at an hour."""
    return min(timedelta(seconds=base_seconds) * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def record_outcomes(outcomes: BatchOutcomes, now: datetime | None = None) -> tuple[int, int]:
    """Write a batch's results in a few statements and commit; returns (sent, failed)."""
    now = now or utcnow()
    table = Delivery.__table__
    sent_by_digest: dict[int, int] = defaultdict(int)
    failed_by_digest: dict[int, int] = defaultdict(int)
    # A row is ours while its try count is the one we claimed; it may have been put back in
    # the queue by a lease sweep meanwhile, and then it is still right to record it sent.
    ours = (DeliveryStatus.SENDING, DeliveryStatus.QUEUED)

    by_response: dict[tuple[int, str], list[ClaimedDelivery]] = defaultdict(list)
    for delivery, response in outcomes.sent:
        by_response[(delivery.digest_id, response[:500])].append(delivery)
    for (digest_id, response), deliveries in by_response.items():
        result = db.session.execute(
            update(Delivery)
            .where(
                tuple_(Delivery.id, Delivery.attempts).in_(
                    [(d.id, d.attempts) for d in deliveries]
                ),
                Delivery.status.in_(ours),
            )
            .values(
                status=DeliveryStatus.SENT,
                smtp_code=250,
                smtp_response=response,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        sent_by_digest[digest_id] += result.rowcount
    if outcomes.sent:
        # Hard bounces count "in a row": a delivered message clears them.
        db.session.execute(
            update(Subscriber)
            .where(
                Subscriber.id.in_([d.subscriber_id for d, _ in outcomes.sent]),
                Subscriber.hard_bounces > 0,
            )
            .values(hard_bounces=0)
            .execution_options(synchronize_session=False)
        )

    if outcomes.failed:
        retry_base = current_app.config["DELIVERY_RETRY_SECONDS"]
        rows = []
        bounced: list[int] = []
        for delivery, error in outcomes.failed:
            final = not error.temporary or delivery.attempts >= DELIVERY_MAX_ATTEMPTS
            rows.append(
                {
                    "b_id": delivery.id,
                    "b_attempts": delivery.attempts,
                    "b_status": DeliveryStatus.FAILED if final else DeliveryStatus.QUEUED,
                    "b_next": None if final else now + retry_delay(delivery.attempts, retry_base),
                    "b_code": error.code,
                    "b_response": str(error)[:500],
                }
            )
            if final:
                failed_by_digest[delivery.digest_id] += 1
            if not error.temporary and error.code is not None and 500 <= error.code < 600:
                bounced.append(delivery.subscriber_id)
            log.warning(
                "delivery %s to %s %s: %s",
                delivery.id,
                delivery.email,
                "failed" if final else "deferred",
                error,
            )
        db.session.connection().execute(
            table.update()
            .where(
                table.c.id == bindparam("b_id"),
                table.c.attempts == bindparam("b_attempts"),
                table.c.status.in_(ours),
            )
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_next"),
                smtp_code=bindparam("b_code"),
                smtp_response=bindparam("b_response"),
                lease_expires_at=None,
                updated_at=now,
            ),
            rows,
        )
        if bounced:
            record_hard_bounces(bounced, now)

    if outcomes.untried:
        db.session.execute(
            update(Delivery)
            .where(
                tuple_(Delivery.id, Delivery.attempts).in_(
                    [(d.id, d.attempts) for d in outcomes.untried]
                ),
                Delivery.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.QUEUED,
                attempts=Delivery.attempts - 1,
                next_attempt_at=now + timedelta(seconds=DELIVERY_OUTAGE_PAUSE_SECONDS),
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    for digest_id in set(sent_by_digest) | set(failed_by_digest):
        db.session.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(
                sent=Digest.sent + sent_by_digest[digest_id],
                failed=Digest.failed + failed_by_digest[digest_id],
            )
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return sum(sent_by_digest.values()), sum(failed_by_digest.values())


def digest_event_data(digest_id: int, recipients: int, sent: int, failed: int) -> dict:
    """What the ``digest.sent`` webhook says (issue 14)."""
    return {"id": digest_id, "recipients": recipients, "sent": sent, "failed": failed}


def record_hard_bounces(subscriber_ids: list[int], now: datetime) -> None:
    """Count a hard bounce; after ``HARD_BOUNCES_BEFORE_BOUNCED`` the address is bounced."""
    db.session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(subscriber_ids))
        .values(hard_bounces=Subscriber.hard_bounces + 1)
        .execution_options(synchronize_session=False)
    )
    becoming_bounced = db.session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.language).where(
            Subscriber.id.in_(subscriber_ids),
            Subscriber.hard_bounces >= HARD_BOUNCES_BEFORE_BOUNCED,
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
    ).all()
    db.session.execute(
        update(Subscriber)
        .where(
            Subscriber.id.in_(subscriber_ids),
            Subscriber.hard_bounces >= HARD_BOUNCES_BEFORE_BOUNCED,
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
        .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
        .execution_options(synchronize_session=False)
    )
    for subscriber_id, address, language in becoming_bounced:
        emit_event(
            "subscriber.bounced", {"id": subscriber_id, "email": address, "language": language}
        )


# ---------------------------------------------------------------------------------------------
# Sending


class RateLimiter:
    """At most ``rate`` messages a second across all sending threads of a process (0: no cap)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


@dataclass
class SendStats:
    """Totals across the threads of one process."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, claimed: int, sent: int, failed: int) -> None:
        with self._lock:
            self.claimed += claimed
            self.sent += sent
            self.failed += failed


class TemplateCache:
    """Each digest's prepared message, loaded from ``Digest.rendered_message`` once."""

    def __init__(self) -> None:
        self._prepared: dict[int, PreparedMessage] = {}
        self._lock = threading.Lock()

    def get(self, digest_id: int) -> PreparedMessage:
        prepared = self._prepared.get(digest_id)
        if prepared is None:
            template = db.session.scalar(
                select(Digest.rendered_message).where(Digest.id == digest_id)
            )
            if template is None:
                raise LookupError(f"digest {digest_id} has no rendered message")
            prepared = PreparedMessage(bytes(template))
            with self._lock:
                self._prepared[digest_id] = prepared
        return prepared


def send_batch(
    transport: Transport,
    batch: list[ClaimedDelivery],
    templates: TemplateCache,
    links: UnsubscribeLinks,
    limiter: RateLimiter,
    sender: str,
    stopping: threading.Event | None = None,
) -> BatchOutcomes:
    """Personalise and send each claimed delivery; nothing is written to the database here."""
    outcomes = BatchOutcomes()
    digest_id = batch[0].digest_id
    prepared = templates.get(digest_id)
    for index, delivery in enumerate(batch):
        if stopping is not None and stopping.is_set():
            outcomes.untried.extend(batch[index:])
            break
        if delivery.digest_id != digest_id:
            digest_id = delivery.digest_id
            prepared = templates.get(digest_id)
        data = prepared.personalise(
            Recipient(
                address=delivery.email,
                name=delivery.name,
                unsubscribe_url=links.url(delivery.subscriber_id, delivery.email_key),
                message_id=message_id(delivery.digest_id, delivery.subscriber_id, prepared),
            )
        )
        limiter.wait()
        try:
            accepted = _send_with_one_reconnect(transport, sender, delivery.email, data)
        except DeliveryError as exc:
            if exc.temporary and exc.code is None:
                # The server is out of reach: the rest of the batch would fail the same way.
                outcomes.untried.extend(batch[index:])
                log.warning(
                    "SMTP server out of reach, %s deliveries put back: %s", len(batch) - index, exc
                )
                break
            outcomes.failed.append((delivery, exc))
        else:
            outcomes.sent.append((delivery, f"{accepted.code} {accepted.response}"))
    return outcomes


def _send_with_one_reconnect(transport: Transport, sender: str, recipient: str, data: bytes):
    # Prepared messages have CRLF line ends throughout: the bulk transport need not check.
    send = getattr(transport, "send_prepared", transport.send)
    try:
        return send(sender, recipient, data)
    except DeliveryError as exc:
        if not (exc.temporary and exc.code is None):
            raise
        # A connection idle for long may have been closed by the server: one fresh try.
        return send(sender, recipient, data)


class DeliverySender:
    """One sending thread's work: its own SMTP connection, claim → send → record."""

    def __init__(
        self,
        app: Flask,
        *,
        templates: TemplateCache,
        limiter: RateLimiter,
        stats: SendStats,
        stopping: threading.Event,
        lease_sweeper: Callable[[], None],
    ) -> None:
        self.app = app
        self.templates = templates
        self.limiter = limiter
        self.stats = stats
        self.stopping = stopping
        self.sweep_leases = lease_sweeper
        self.batch_size = int(app.config["SEND_BATCH_SIZE"])
        self.lease = timedelta(seconds=int(app.config["DELIVERY_LEASE_SECONDS"]))

    def run(self, *, until_idle: bool, poll_interval: float = 1.0) -> None:
        with self.app.app_context():
            transport = open_bulk_transport(self.app.config["MAIL_URL"])
            sender = envelope_sender(self.app.config["MAIL_FROM"])
            links = UnsubscribeLinks()
            try:
                while not self.stopping.is_set():
                    try:
                        worked = self.run_once(transport, links, sender)
                    except Exception:
                        log.exception("digest sending pass failed")
                        db.session.rollback()
                        worked = 0
                        if until_idle:
                            break
                    if not worked:
                        if until_idle:
                            break
                        self.stopping.wait(poll_interval)
            finally:
                transport.close()
                db.session.remove()

    def run_once(self, transport: Transport, links: UnsubscribeLinks, sender: str) -> int:
        """Claim, send and record one batch; returns how many deliveries were claimed."""
        self.sweep_leases()
        batch = claim_deliveries(self.batch_size, lease=self.lease)
        if not batch:
            return 0
        outcomes = send_batch(
            transport, batch, self.templates, links, self.limiter, sender, self.stopping
        )
        sent, failed = record_outcomes(outcomes)
        self.stats.add(len(batch), sent, failed)
        finish_if_complete(batch[0].digest_id)
        return len(batch)


class DigestSendingPool:
    """``SEND_CONNECTIONS`` threads sending digest deliveries, each on its own connection."""

    def __init__(self, app: Flask, stopping: threading.Event | None = None) -> None:
        self.app = app
        self.stopping = stopping or threading.Event()
        self.stats = SendStats()
        self.templates = TemplateCache()
        self.limiter = RateLimiter(float(app.config.get("SEND_MAX_RATE") or 0))
        self.connections = max(1, int(app.config.get("SEND_CONNECTIONS") or 1))
        self._threads: list[threading.Thread] = []
        self._sweep_lock = threading.Lock()
        self._last_sweep = 0.0

    def _sweep_leases(self) -> None:
        """Put back deliveries of dead workers, at most every few seconds per process."""
        with self._sweep_lock:
            if time.monotonic() - self._last_sweep < LEASE_SWEEP_SECONDS:
                return
            self._last_sweep = time.monotonic()
        released = release_expired_leases(utcnow())
        if released:
            log.warning("%s deliveries of a dead worker put back in the queue", released)

    def _sender(self) -> DeliverySender:
        return DeliverySender(
            self.app,
            templates=self.templates,
            limiter=self.limiter,
            stats=self.stats,
            stopping=self.stopping,
            lease_sweeper=self._sweep_leases,
        )

    def run_until_idle(self) -> SendStats:
        """Send everything due now on all connections, then return."""
        threads = [
            threading.Thread(
                target=self._sender().run,
                kwargs={"until_idle": True},
                name=f"digest-sender-{index}",
            )
            for index in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.stats

    def start(self, poll_interval: float = 1.0) -> None:
        """Send in the background until ``stop()``."""
        for index in range(self.connections):
            thread = threading.Thread(
                target=self._sender().run,
                kwargs={"until_idle": False, "poll_interval": poll_interval},
                name=f"digest-sender-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)


def pending_delivery_count(now: datetime | None = None) -> int:
    """Deliveries of active digests that are due now or in flight."""
    now = now or utcnow()
    return (
        db.session.scalar(
            select(func.count(Delivery.id))
            .join(Digest, Digest.id == Delivery.digest_id)
            .where(
                Digest.status == DigestStatus.SENDING,
                Digest.paused.is_(False),
                ((Delivery.status == DeliveryStatus.QUEUED) & (Delivery.next_attempt_at <= now))
                | (Delivery.status == DeliveryStatus.SENDING),
            )
        )
        or 0
    )


# ---------------------------------------------------------------------------------------------
# Preview and test send


def preview_message(digest: Digest, now: datetime | None = None) -> EmailMessage:
    """The digest as a subscriber would get it (the rendered one, or a fresh composition)."""
    now = now or utcnow()
    template = digest.rendered_message
    if template is None:
        releases = list(digest.releases) or releases_for_digest(
            digest.language, now, first_window_days=current_app.config["DIGEST_FIRST_WINDOW_DAYS"]
        )
        subject = digest.subject or default_subject(digest.language, releases, now)
        template = render_digest_template(digest.language, subject, releases, now)
    prepared = PreparedMessage(bytes(template))
    data = prepared.personalise(
        Recipient(
            address="subscriber@example.org",
            unsubscribe_url=public_url_for(
                "public.unsubscribe",
                token="preview",  # noqa: S106 - a dummy link, not a secret
            ),
            message_id=message_id(digest.id or 0, 0, prepared),
        )
    )
    return email.message_from_bytes(data, policy=default_policy)  # type: ignore[return-value]


def queue_test_send(digest: Digest, address: str, now: datetime | None = None) -> None:
    """Queue the digest to one address through the outbox (the caller commits).

    Its unsubscribe link is a dummy: a test recipient is not a subscriber.
    """
    message = preview_message(digest, now)
    subject = str(message["Subject"] or "")
    del message["To"]
    message["To"] = address
    del message["Subject"]
    message["Subject"] = f"[TEST] {subject}"
    queue_message("digest_test", address, message)
