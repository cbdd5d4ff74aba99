"""Outcomes written as they come, so a crash re-sends at most the messages in flight.

The sending threads of a pool hand every outcome to one ``OutcomeRecorder``, whose own thread
(and own database connection) commits whatever has gathered, again and again: a group commit
that never waits for a batch to end. The senders together may run ahead of what is committed by
at most ``window`` messages (one window per connection); beyond that they wait. A SIGKILL
therefore re-sends at most ``window`` recorded-in-memory messages plus one on the wire per
connection.

The recorder also renews the leases of the claims its sender holds, so a slow relay (a rate
cap, a throttling server) never lets a lease lapse under a sender that is still working, and
it never throws an outcome away: a failed write (SQLite busy, PostgreSQL restarting) is
retried with backoff while the sender waits.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import Connection

from ..config import STREAM_NEWSLETTER
from ..extensions import db
from ..mail.transport import DeliveryError
from ..models import utcnow
from ..observability import instruments
from .delivery_outcomes import BatchOutcomes, add_digest_counts, record_outcomes, record_sent
from .delivery_queue import ClaimedDelivery, renew_leases

log = logging.getLogger(__name__)

# Backoff of the recorder when the database refuses a write: short first (a lock), then up to
# a few seconds (a restart), never giving up while the process lives.
RECORD_RETRY_FIRST_SECONDS = 0.05
RECORD_RETRY_MAX_SECONDS = 2.0
# The digests' progress counters are written at most this often (and whenever the sender
# waits for everything to be recorded, and on close): the progress bar needs no more.
COUNTERS_EVERY_SECONDS = 0.5


class OutcomeRecorder:
    """Commits one sender's outcomes continuously and keeps its claims' leases alive."""

    def __init__(
        self,
        app: Flask,
        *,
        lease: timedelta,
        window: int,
        on_recorded=None,
    ) -> None:
        self.app = app
        self.lease = lease
        self.window = max(1, window)
        self.renew_every = max(0.2, lease.total_seconds() / 3)
        self.on_recorded = on_recorded
        self._cond = threading.Condition()
        self._pending = BatchOutcomes()
        self._unrecorded = 0
        # Outcomes handed over and committed since the start: ``flush`` waits for its own,
        # not for a moment with nothing pending (other senders of a shared recorder keep
        # adding, so that moment may never come).
        self._added = 0
        self._recorded = 0
        self._tokens: set[str] = set()
        # Set by ``flush``: the sender is about to look at the digest (finish it), so the
        # progress counters go out with the outcomes instead of at the next interval.
        self._counters_wanted = False
        self._closing = False
        self._connection: Connection | None = None
        self._thread = threading.Thread(target=self._run, name="outcome-recorder", daemon=True)
        self._thread.start()

    # -- the sender's side --------------------------------------------------------------------

    def hold(self, token: str) -> None:
        """Keep renewing the lease of this claim until ``release``."""
        with self._cond:
            self._tokens.add(token)
            self._cond.notify_all()

    def release(self, token: str) -> None:
        with self._cond:
            self._tokens.discard(token)

    def wait_for_room(self) -> None:
        """Block while the sender is ``window`` outcomes ahead of the database."""
        with self._cond:
            while self._unrecorded >= self.window and self._thread.is_alive():
                self._cond.wait(0.5)

    def sent(self, delivery: ClaimedDelivery, response: str) -> None:
        self._add(lambda pending: pending.sent.append((delivery, response)), 1)

    def failed(self, delivery: ClaimedDelivery, error: DeliveryError) -> None:
        self._add(lambda pending: pending.failed.append((delivery, error)), 1)

    def untried(self, deliveries: list[ClaimedDelivery]) -> None:
        if deliveries:
            self._add(lambda pending: pending.untried.extend(deliveries), len(deliveries))

    def flush(self) -> None:
        """Block until every outcome handed over so far is committed."""
        with self._cond:
            self._counters_wanted = True
            self._cond.notify_all()
            target = self._added
            while self._recorded < target and self._thread.is_alive():
                self._cond.wait(0.5)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(30)

    def _add(self, append, count: int) -> None:
        with self._cond:
            append(self._pending)
            self._unrecorded += count
            self._added += count
            self._cond.notify_all()

    # -- the recorder's thread ----------------------------------------------------------------

    def _run(self) -> None:
        with self.app.app_context():
            try:
                self._loop()
            finally:
                self._drop_connection()
                db.session.remove()

    def _record(self, batch: BatchOutcomes, counters: dict[int, list[int]]) -> tuple[int, int]:
        """Write ``batch`` and commit; the digests' counts are added to ``counters``.

        Nearly every batch is only messages sent: those go down the recorder's own connection
        in a bare Core transaction. Through the session, each pass paid a pool checkout (and its
        ping), the ORM's transaction bookkeeping and a reset on return: more CPU than the
        message's SMTP conversation (bench/README.md, "The recorder's statements")."""
        if batch.failed or batch.untried:
            return record_outcomes(batch, counters=counters)
        if self._connection is None:
            self._connection = db.engine.connect()
        with self._connection.begin():
            marked = record_sent(self._connection, batch.sent, utcnow())
        for digest_id, sent in marked.items():
            counters.setdefault(digest_id, [0, 0])[0] += sent
        sent = sum(marked.values())
        instruments.record_sends(STREAM_NEWSLETTER, sent=sent)
        return sent, 0

    def _drop_connection(self) -> None:
        """After a failed write the connection may be dead (a database restart): a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                log.debug("closing the recorder's connection failed", exc_info=True)

    def _loop(self) -> None:
        last_renewal = last_counters = time.monotonic()
        counters: dict[int, list[int]] = {}
        retry = RECORD_RETRY_FIRST_SECONDS
        while True:
            with self._cond:
                while not len(self._pending) and not self._closing:
                    now = time.monotonic()
                    if now - last_renewal >= self.renew_every and self._tokens:
                        break
                    if counters and (
                        self._counters_wanted or now - last_counters >= COUNTERS_EVERY_SECONDS
                    ):
                        break
                    self._cond.wait(COUNTERS_EVERY_SECONDS if counters else self.renew_every / 2)
                finishing = self._closing and not len(self._pending)
                if finishing and not counters:
                    return
                batch, self._pending = self._pending, BatchOutcomes()
                tokens = list(self._tokens)
                counters_wanted, self._counters_wanted = self._counters_wanted, False
            renew = time.monotonic() - last_renewal >= self.renew_every
            try:
                result = self._record(batch, counters) if len(batch) else (0, 0)
            except Exception:
                # Never drop an outcome: put it back in front and try again shortly.
                log.warning("recording outcomes failed; retrying", exc_info=True)
                db.session.rollback()
                self._drop_connection()
                with self._cond:
                    self._counters_wanted = self._counters_wanted or counters_wanted
                    batch.sent += self._pending.sent
                    batch.failed += self._pending.failed
                    batch.untried += self._pending.untried
                    self._pending = batch
                time.sleep(retry)
                retry = min(retry * 2, RECORD_RETRY_MAX_SECONDS)
                continue
            try:
                # Not once a message: every sender's recorder updates the same digest row, and
                # writing it per outcome serialised them all behind its lock.
                due = time.monotonic() - last_counters >= COUNTERS_EVERY_SECONDS
                if counters and (counters_wanted or due or finishing):
                    add_digest_counts(counters)
                    db.session.commit()
                    counters = {}
                    last_counters = time.monotonic()
                if renew and tokens:
                    renew_leases(tokens, self.lease)
                    db.session.commit()
                if renew:
                    last_renewal = time.monotonic()
            except Exception:
                # Counters and leases are retried at the next pass; the outcomes are written.
                log.warning("progress counters or lease renewal failed", exc_info=True)
                db.session.rollback()
            retry = RECORD_RETRY_FIRST_SECONDS
            if finishing:
                return
            if self.on_recorded is not None and len(batch):
                self.on_recorded(result)
            with self._cond:
                self._unrecorded -= len(batch)
                self._recorded += len(batch)
                self._cond.notify_all()
