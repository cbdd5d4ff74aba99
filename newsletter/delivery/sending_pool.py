"""The sender pool: ``SEND_CONNECTIONS`` threads, each with its own persistent SMTP connection,
that claim a batch, personalise the digest template per recipient, push the bytes, and record."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from sqlalchemy import (
    select,
)

from ..config import OUTAGE_BACKOFF_FIRST_SECONDS, OUTAGE_BACKOFF_MAX_SECONDS
from ..domain.suppressions import SuppressionKeys, suppressed_keys
from ..extensions import db
from ..mail.message import envelope_sender
from ..mail.prepared import PreparedMessage, Recipient
from ..mail.transport import DeliveryError, Transport
from ..models import (
    Digest,
    utcnow,
)
from ..observability import instruments
from ..observability.logs import log_context
from .delivery_queue import (
    ClaimedDelivery,
    claim_deliveries,
    finish_if_complete,
    new_claim_token,
    release_expired_leases,
)
from .digest_messages import UnsubscribeLinks, message_id
from .outcome_recorder import OutcomeRecorder
from .retry_policy import costs_no_try, delivery_policy
from .return_paths import ReturnPaths
from .send_rate import Pacer as RateLimiter  # noqa: F401 - the old name, re-exported
from .send_rate import SendRateLimiter, send_rate_limiter
from .streams import STREAM_NEWSLETTER, open_bulk_stream_transport, stream_mail_from

SUPPRESSED = "suppressed: the address hard-bounced or complained"

# How often a process puts back deliveries whose worker died (their lease lapsed).
LEASE_SWEEP_SECONDS = 5.0

log = logging.getLogger(__name__)


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
    limiter: SendRateLimiter,
    sender: str,
    recorder: OutcomeRecorder,
    stopping: threading.Event | None = None,
    return_paths: ReturnPaths | None = None,
    suppressed: frozenset[str] | set[str] = frozenset(),
) -> bool:
    """Personalise and send each claimed delivery, handing each outcome to ``recorder`` as it
    comes. Returns False when the server was out of reach (the rest went back untried)."""
    digest_id = batch[0].digest_id
    prepared = templates.get(digest_id)
    queue = deque(batch)
    # Deliveries whose domain was at its cap (SEND_DOMAIN_RATES) when their turn came: sent
    # after the rest of the batch, so one capped domain does not hold every other one back.
    held: deque[ClaimedDelivery] = deque()
    while queue or held:
        first_pass = bool(queue)
        delivery = queue.popleft() if first_pass else held.popleft()
        if stopping is not None and stopping.is_set():
            recorder.untried([delivery, *queue, *held])
            return True
        if delivery.email_key in suppressed:
            # On the suppression list (hard bounce, complaint): never sent, recorded failed.
            recorder.failed(delivery, DeliveryError(SUPPRESSED, temporary=False))
            continue
        if first_pass:
            if not limiter.take_domain_now(delivery.email):
                held.append(delivery)
                continue
        else:
            limiter.wait_for_domain(delivery.email)
        try:
            if delivery.digest_id != digest_id:
                digest_id = delivery.digest_id
                prepared = templates.get(digest_id)
            data = prepared.personalise(
                Recipient(
                    address=delivery.email,
                    name=delivery.name,
                    unsubscribe_url=links.url(delivery.subscriber_id, delivery.email_key),
                    link_url=links.preferences_url(delivery.subscriber_id, delivery.email_key),
                    message_id=message_id(delivery.digest_id, delivery.subscriber_id, prepared),
                    unsubscribe_mailto=(
                        return_paths.unsubscribe_mailbox(delivery.subscriber_id) or ""
                        if return_paths
                        else ""
                    ),
                )
            )
        except Exception as exc:  # noqa: BLE001 - one bad row must not cost the others
            # Counted as a failed try of this one delivery: it stops at the last try.
            log.exception("delivery %s could not be prepared", delivery.id)
            recorder.failed(delivery, DeliveryError(f"could not prepare: {exc}", temporary=True))
            continue
        personal = return_paths is not None and return_paths.personal
        envelope = return_paths.delivery_sender(delivery.id) if personal else sender
        # Never more than the recorder's window ahead of what the database knows.
        recorder.wait_for_room()
        limiter.wait(delivery.email, domain_taken=True)
        try:
            with log_context(digest_id=delivery.digest_id, delivery_id=delivery.id):
                accepted = _send_with_one_reconnect(transport, envelope, delivery.email, data)
        except DeliveryError as exc:
            if costs_no_try(exc):
                # The server is out of reach: the rest of the batch would fail the same way.
                unsent = [delivery, *queue, *held]
                recorder.untried(unsent)
                log.warning(
                    "SMTP server out of reach, %s deliveries put back: %s", len(unsent), exc
                )
                return False
            recorder.failed(delivery, exc)
        else:
            recorder.sent(delivery, f"{accepted.code} {accepted.response}")
    return True


def _send_with_one_reconnect(transport: Transport, sender: str, recipient: str, data: bytes):
    # Prepared messages have CRLF line ends throughout: the bulk transport need not check.
    send = getattr(transport, "send_prepared", transport.send)
    with instruments.smtp_timer(STREAM_NEWSLETTER):
        try:
            return send(sender, recipient, data)
        except DeliveryError as exc:
            if not costs_no_try(exc):
                raise
            # A connection idle for long may have been closed by the server: one fresh try.
            return send(sender, recipient, data)


def new_recorder(app: Flask, stats: SendStats, *, senders: int) -> OutcomeRecorder:
    """One recorder for ``senders`` sending threads: one writer commits all their outcomes
    (a group commit of up to one window per sender), instead of one writer per connection
    queueing on SQLite's single write lock and each paying its own commit. The crash bound is
    unchanged: at most ``SEND_UNRECORDED_WINDOW`` unrecorded outcomes per connection in all."""
    window = int(app.config.get("SEND_UNRECORDED_WINDOW") or 1)
    return OutcomeRecorder(
        app,
        lease=delivery_policy(app.config).lease,
        window=window * senders,
        on_recorded=lambda counts: stats.add(0, *counts),
    )


def batch_size_for(configured: int, rate: float, lease: timedelta) -> int:
    """A batch a sender can finish within half its lease at the relay's cap (the lease is
    renewed anyway; this keeps a frozen sender's claim small)."""
    if rate <= 0:
        return configured
    return max(1, min(configured, int(rate * lease.total_seconds() / 2)))


class DeliverySender:
    """One sending thread's work: its own SMTP connection, claim → send → record."""

    def __init__(
        self,
        app: Flask,
        *,
        templates: TemplateCache,
        limiter: SendRateLimiter,
        stats: SendStats,
        stopping: threading.Event,
        lease_sweeper: Callable[[], None],
        recorder: OutcomeRecorder | None = None,
    ) -> None:
        self.app = app
        self.shared_recorder = recorder
        self.templates = templates
        self.limiter = limiter
        self.stats = stats
        self.stopping = stopping
        self.sweep_leases = lease_sweeper
        self.lease = delivery_policy(app.config).lease
        self.batch_size = batch_size_for(
            int(app.config["SEND_BATCH_SIZE"]),
            float(app.config.get("SEND_MAX_RATE") or 0),
            self.lease,
        )

    def run(self, *, until_idle: bool, poll_interval: float = 1.0) -> None:
        with self.app.app_context():
            transport = open_bulk_stream_transport(self.app.config)
            sender = envelope_sender(stream_mail_from(STREAM_NEWSLETTER, self.app.config))
            links = UnsubscribeLinks()
            recorder = self.shared_recorder or new_recorder(self.app, self.stats, senders=1)
            outage = OUTAGE_BACKOFF_FIRST_SECONDS
            try:
                while not self.stopping.is_set():
                    try:
                        worked = self.run_once(transport, links, sender, recorder)
                    except Exception:
                        log.exception("digest sending pass failed")
                        db.session.rollback()
                        worked = 0
                        if until_idle:
                            break
                    if worked < 0:
                        # The relay is out of reach: no try was counted; wait, longer each time.
                        if until_idle:
                            break
                        self.stopping.wait(outage)
                        outage = min(outage * 2, OUTAGE_BACKOFF_MAX_SECONDS)
                        continue
                    outage = OUTAGE_BACKOFF_FIRST_SECONDS
                    if not worked:
                        if until_idle:
                            break
                        self.stopping.wait(poll_interval)
            finally:
                if recorder is not self.shared_recorder:
                    recorder.close()
                transport.close()
                db.session.remove()

    def run_once(
        self,
        transport: Transport,
        links: UnsubscribeLinks,
        sender: str,
        recorder: OutcomeRecorder,
    ) -> int:
        """Claim and send one batch, outcomes recorded as they come; returns how many were
        claimed (negative when the relay was out of reach)."""
        self.sweep_leases()
        token = new_claim_token()
        recorder.hold(token)
        try:
            batch = claim_deliveries(self.batch_size, lease=self.lease, token=token)
            if not batch:
                return 0
            self.stats.add(len(batch), 0, 0)
            try:
                reachable = send_batch(
                    transport,
                    batch,
                    self.templates,
                    links,
                    self.limiter,
                    sender,
                    recorder,
                    self.stopping,
                    return_paths=ReturnPaths(self.app.config),
                    suppressed=suppressed_keys(
                        SuppressionKeys.from_config(self.app.config),
                        [delivery.email_key for delivery in batch],
                    ),
                )
            finally:
                recorder.flush()
        finally:
            recorder.release(token)
        finish_if_complete(batch[0].digest_id)
        return len(batch) if reachable else -len(batch)


class DigestSendingPool:
    """``SEND_CONNECTIONS`` threads sending digest deliveries, each on its own connection."""

    def __init__(self, app: Flask, stopping: threading.Event | None = None) -> None:
        self.app = app
        self.stopping = stopping or threading.Event()
        self.stats = SendStats()
        self.templates = TemplateCache()
        self.limiter = send_rate_limiter(app)
        self.connections = max(1, int(app.config.get("SEND_CONNECTIONS") or 1))
        self._threads: list[threading.Thread] = []
        self._recorder: OutcomeRecorder | None = None
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

    def _sender(self, recorder: OutcomeRecorder) -> DeliverySender:
        return DeliverySender(
            self.app,
            templates=self.templates,
            limiter=self.limiter,
            stats=self.stats,
            stopping=self.stopping,
            lease_sweeper=self._sweep_leases,
            recorder=recorder,
        )

    def run_until_idle(self) -> SendStats:
        """Send everything due now on all connections, then return."""
        recorder = new_recorder(self.app, self.stats, senders=self.connections)
        threads = [
            threading.Thread(
                target=self._sender(recorder).run,
                kwargs={"until_idle": True},
                name=f"digest-sender-{index}",
            )
            for index in range(self.connections)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            recorder.close()
        return self.stats

    def start(self, poll_interval: float = 1.0) -> None:
        """Send in the background until ``stop()``."""
        self._recorder = new_recorder(self.app, self.stats, senders=self.connections)
        for index in range(self.connections):
            thread = threading.Thread(
                target=self._sender(self._recorder).run,
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
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
