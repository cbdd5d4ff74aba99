"""The worker process: sends what is queued and, when it holds the lease, runs the scheduler.

Any number of workers may run against one database; the database decides who claims what.
Each worker runs:

- the outbox loop (transactional emails) in its main thread;
- ``SEND_CONNECTIONS`` digest-sending threads, each with its own SMTP connection;
- a leadership thread that keeps trying for the scheduler lease, runs APScheduler while it
  holds it and reconciles digest rows into jobs at every renewal.

``--until-idle`` runs the due jobs (when no other live worker holds the scheduler), delivers
everything due, and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from ..config import (
    DELIVERY_HISTORY_DAYS,
    OUTAGE_BACKOFF_FIRST_SECONDS,
    OUTAGE_BACKOFF_MAX_SECONDS,
    RETENTION_PURGE_INTERVAL,
)
from ..delivery.delivery_queue import pending_delivery_count
from ..delivery.outbox import RelayUnreachable, deliver_outbox_batch, pending_outbox_count
from ..delivery.retention import purge_delivered_mail
from ..delivery.send_rate import send_rate_limiter
from ..delivery.sending_pool import DigestSendingPool
from ..delivery.streams import StreamTransports
from ..delivery.webhooks import deliver_webhook_batch
from ..extensions import db
from ..observability.exposition import serve_worker_metrics
from . import jobs
from .leadership import LeaderElection, release_lease, try_acquire_lease
from .progress import SendProgress
from .scheduler import DigestScheduler

log = logging.getLogger(__name__)


@dataclass
class WorkSummary:
    outbox_claimed: int = 0
    passes: int = 0
    stopped_early: str | None = None
    extra: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        text = f"worker idle after {self.passes} passes: {self.outbox_claimed} outbox messages"
        for key, value in self.extra.items():
            text += f", {value} {key}"
        if self.stopped_early:
            text += f" ({self.stopped_early})"
        return text


def purge_stored_mail(app: Flask) -> int:
    """Empty delivered bodies older than ``MAIL_RETENTION_DAYS`` and delete finished rows older
    than ``DELIVERY_HISTORY_DAYS`` (see ``delivery.retention``); returns how many bodies.
    A database error is logged and retried at the next purge."""
    with app.app_context():
        try:
            retention = timedelta(days=float(app.config.get("MAIL_RETENTION_DAYS", 7)))
            history = timedelta(
                days=float(app.config.get("DELIVERY_HISTORY_DAYS", DELIVERY_HISTORY_DAYS))
            )
            report = purge_delivered_mail(retention, history=history)
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("purging stored mail failed")
            return 0
        finally:
            db.session.remove()
    return report.bodies


class SchedulerRole:
    """Start APScheduler when elected, stop it when deposed, reconcile at each renewal."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.scheduler: DigestScheduler | None = None
        self._last_purge = float("-inf")

    def elected(self) -> None:
        self.scheduler = DigestScheduler(self.app)
        self.scheduler.start()

    def deposed(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            # Lost the lease: stop firing at once; jobs already running finish (they are
            # compare-and-set protected, so finishing is harmless).
            scheduler.shutdown(wait=False)

    def tick(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.reconcile()
            # The leader purges stored mail now and then (issue 11).
            now = time.monotonic()
            if now - self._last_purge >= RETENTION_PURGE_INTERVAL.total_seconds():
                self._last_purge = now
                purge_stored_mail(self.app)

    def stop(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)


class Worker:
    def __init__(self, app: Flask, *, name: str | None = None, poll_interval: float = 1.0):
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.progress: SendProgress | None = None  # long-running mode only

    def stop(self, *_args: object) -> None:
        self.stopping.set()

    def run(self, *, until_idle: bool = False) -> WorkSummary:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        if until_idle:
            return self._run_until_idle()
        return self._run_forever()

    # -- long-running ---------------------------------------------------------------------

    def _run_forever(self) -> WorkSummary:
        summary = WorkSummary()
        role = SchedulerRole(self.app)
        election = LeaderElection(
            self.app,
            self.name,
            float(self.app.config["SCHEDULER_LEASE_SECONDS"]),
            on_elected=role.elected,
            on_deposed=role.deposed,
            on_tick=role.tick,
        )
        senders = DigestSendingPool(self.app, self.stopping)
        metrics_server = self._serve_metrics()
        self.progress = SendProgress(self.app)
        # Its own thread: a batch of outbox mail under a slow relay takes minutes, and the
        # progress of it (and of digests) must show meanwhile, not between batches.
        reporter = threading.Thread(
            target=self._report_progress, name="worker-progress", daemon=True
        )
        reporter.start()
        election.start()
        senders.start(self.poll_interval)
        log.info("worker %s started", self.name)
        try:
            self._outbox_loop(summary, until_idle=False)
        finally:
            self.stopping.set()
            election.stop()
            role.stop()
            senders.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
        summary.extra["digest messages sent"] = senders.stats.sent
        return summary

    def _report_progress(self) -> None:
        while not self.stopping.wait(0.1):
            if self.progress is not None:
                self.progress.tick()  # cheap until its interval has passed

    def _serve_metrics(self):  # type: ignore[no-untyped-def]
        """The worker's own metrics port (``NEWSLETTER_WORKER_METRICS_PORT``), when set."""
        port = int(self.app.config.get("WORKER_METRICS_PORT") or 0)
        if not port:
            return None
        host = self.app.config.get("WORKER_METRICS_HOST") or "127.0.0.1"
        server = serve_worker_metrics(self.app, host, port)
        log.info("worker %s serves metrics on http://%s:%s/metrics", self.name, host, port)
        return server

    # -- until idle -----------------------------------------------------------------------

    def _run_until_idle(self) -> WorkSummary:
        summary = WorkSummary()
        summary.extra["scheduled jobs run"] = self._run_due_jobs()
        sent = failed = 0
        while not self.stopping.is_set():
            summary.passes += 1
            stats = DigestSendingPool(self.app, self.stopping).run_until_idle()
            sent += stats.sent
            failed += stats.failed
            claimed = self._outbox_loop(summary, until_idle=True)
            with self.app.app_context():
                left = pending_delivery_count() + pending_outbox_count()
                db.session.remove()
            if not left or (stats.claimed == 0 and claimed == 0):
                break
        summary.extra["digest messages sent"] = sent
        summary.extra["digest deliveries failed"] = failed
        summary.extra["stored bodies purged"] = purge_stored_mail(self.app)
        return summary

    def _run_due_jobs(self) -> int:
        """Run the jobs due now if no other live worker holds the scheduler; returns how many."""
        ttl = timedelta(seconds=float(self.app.config["SCHEDULER_LEASE_SECONDS"]))
        with self.app.app_context():
            try:
                if not try_acquire_lease(self.name, ttl):
                    # Perhaps a dead worker's lease: run what is due ourselves (safe, see
                    # ``run_due_now``) rather than defer to a leader that may never come.
                    log.info("another worker holds the scheduler; running due jobs directly")
                    return jobs.run_due_now()
            finally:
                db.session.remove()
        scheduler = DigestScheduler(self.app)
        try:
            scheduler.start()
            scheduler.wait_for_due_jobs()
        finally:
            scheduler.shutdown(wait=True)
            with self.app.app_context():
                try:
                    release_lease(self.name)
                except SQLAlchemyError:
                    db.session.rollback()
                finally:
                    db.session.remove()
        return scheduler.runs

    # -- outbox ---------------------------------------------------------------------------

    def _webhook_pass(self) -> int:
        """Outgoing webhooks due now (issue 14), posted between outbox batches."""
        try:
            return deliver_webhook_batch()
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("webhook pass failed: %s", exc)
            return 0

    def _outbox_loop(self, summary: WorkSummary, *, until_idle: bool) -> int:
        claimed_total = 0
        outage = OUTAGE_BACKOFF_FIRST_SECONDS
        with self.app.app_context():
            transport = StreamTransports()
            limiter = send_rate_limiter(self.app)  # one relay cap, digests and outbox alike
            try:
                while not self.stopping.is_set():
                    if not until_idle:
                        summary.passes += 1
                    try:
                        claimed = deliver_outbox_batch(transport, limiter=limiter)
                    except RelayUnreachable as exc:
                        # Nothing was counted against the messages: wait, longer each time.
                        log.warning("relay out of reach, outbox waits %.0f s: %s", outage, exc)
                        if until_idle:
                            break
                        self.stopping.wait(outage)
                        outage = min(outage * 2, OUTAGE_BACKOFF_MAX_SECONDS)
                        continue
                    except SQLAlchemyError as exc:
                        db.session.rollback()
                        log.warning("outbox pass failed: %s", exc)
                        claimed = 0
                        if not until_idle:
                            self.stopping.wait(outage)
                    outage = OUTAGE_BACKOFF_FIRST_SECONDS
                    claimed += self._webhook_pass()
                    summary.outbox_claimed += claimed
                    claimed_total += claimed
                    if until_idle:
                        if pending_outbox_count() == 0 or claimed == 0:
                            break
                        continue
                    if claimed == 0:
                        self.stopping.wait(self.poll_interval)
            finally:
                transport.close()
                db.session.remove()
        return claimed_total
