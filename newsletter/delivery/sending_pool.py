"""The sender pool: ``SEND_CONNECTIONS`` threads, each with its own persistent SMTP connection,
that claim a batch, personalise the digest template per recipient, push the bytes, and record."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from sqlalchemy import (
    select,
)

from ..extensions import db
from ..mail.message import envelope_sender
from ..mail.prepared import PreparedMessage, Recipient
from ..mail.transport import DeliveryError, Transport
from ..models import (
    Digest,
    utcnow,
)
from .delivery_queue import (
    BatchOutcomes,
    ClaimedDelivery,
    claim_deliveries,
    finish_if_complete,
    record_outcomes,
    release_expired_leases,
)
from .digest_messages import UnsubscribeLinks, message_id
from .streams import STREAM_NEWSLETTER, open_bulk_stream_transport, stream_mail_from

# How often a process puts back deliveries whose worker died (their lease lapsed).
LEASE_SWEEP_SECONDS = 5.0

log = logging.getLogger(__name__)


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
            transport = open_bulk_stream_transport(self.app.config)
            sender = envelope_sender(stream_mail_from(STREAM_NEWSLETTER, self.app.config))
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
