"""Which worker runs the scheduler: a lease row in ``scheduler_leases``.

APScheduler cannot share a job store between schedulers, so exactly one worker runs it. The
holder renews its lease every third of its length; when it stops (killed, frozen, cut off), the
lease lapses and another worker takes it over at its next try. Taking and renewing are single
compare-and-set statements, so the database decides, with no coordinator of our own.

Correctness never rests on this alone: a digest starts through a compare-and-set on its status
and a recurring period is unique on ``(schedule_id, send_at)``, so even two schedulers for a
moment cannot send anything twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..config import SCHEDULER_ADVISORY_LOCK_KEY, SCHEDULER_LEASE_NAME
from ..extensions import db
from ..models import SchedulerLease, utcnow

log = logging.getLogger(__name__)


def database_now() -> datetime:
    """The database's clock (naive UTC) on PostgreSQL, so workers on machines whose clocks
    differ compare lease times on one clock; SQLite lives on one machine, whose clock it is."""
    if db.session.get_bind().dialect.name == "postgresql":
        value = db.session.scalar(text("SELECT timezone('utc', clock_timestamp())"))
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
    return utcnow()


def try_acquire_lease(holder: str, ttl: timedelta, name: str = SCHEDULER_LEASE_NAME) -> bool:
    """Take or renew the lease for ``holder``; True when it holds it now. Commits."""
    now = database_now()
    renewed = db.session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            (SchedulerLease.holder == holder) | (SchedulerLease.expires_at < now),
        )
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    ).rowcount
    if renewed:
        db.session.commit()
        return True
    db.session.rollback()
    try:
        db.session.execute(
            insert(SchedulerLease).values(name=name, holder=holder, expires_at=now + ttl)
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # someone else holds a live lease
        return False
    return True


def release_lease(holder: str, name: str = SCHEDULER_LEASE_NAME) -> None:
    """Give the lease up at once (a clean stop), so another worker need not wait it out."""
    db.session.execute(
        delete(SchedulerLease).where(SchedulerLease.name == name, SchedulerLease.holder == holder)
    )
    db.session.commit()


class AdvisoryLock:
    """PostgreSQL's session advisory lock on a dedicated connection: held exactly as long as
    that connection lives, so a dead or cut-off leader loses it with no clock involved."""

    def __init__(self, app: Flask, key: int = SCHEDULER_ADVISORY_LOCK_KEY) -> None:
        self.app = app
        self.key = key
        self._connection = None

    @staticmethod
    def applies(app: Flask) -> bool:
        with app.app_context():
            return db.engine.dialect.name == "postgresql"

    def hold(self) -> bool:
        """True while this process holds the lock (taking it if free). Never raises."""
        try:
            if self._connection is None:
                with self.app.app_context():
                    self._connection = db.engine.connect()
                held = self._connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar()
                self._connection.commit()
                if not held:
                    self.close()
                return bool(held)
            self._connection.execute(text("SELECT 1"))  # the lock lives as long as this does
            self._connection.commit()
            return True
        except Exception as exc:  # noqa: BLE001 - a lost connection means a lost lock
            log.warning("scheduler advisory lock lost: %s", exc)
            self.close()
            return False

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


class LeaderElection(threading.Thread):
    """Keeps trying for the lease; calls ``on_elected`` when won and ``on_deposed`` when lost.

    ``on_tick`` runs after each successful renewal while leading (the scheduler reconciles
    rows into jobs there).
    """

    def __init__(
        self,
        app: Flask,
        holder: str,
        ttl_seconds: float,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="scheduler-leadership", daemon=True)
        self.app = app
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_seconds)
        self.interval = ttl_seconds / 3
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_tick = on_tick
        self.stopping = threading.Event()
        self.leading = False
        self.advisory = AdvisoryLock(app) if AdvisoryLock.applies(app) else None

    def run(self) -> None:
        with self.app.app_context():
            try:
                while not self.stopping.is_set():
                    try:
                        self._step()
                    except Exception:
                        # The election outlives any one failure (a database restart, a bug).
                        log.exception("scheduler election step failed")
                        with contextlib.suppress(Exception):
                            db.session.rollback()
                    self.stopping.wait(self.interval)
            finally:
                if self.leading:
                    self._depose()
                    try:
                        release_lease(self.holder)
                    except SQLAlchemyError:
                        db.session.rollback()
                if self.advisory is not None:
                    self.advisory.close()
                db.session.remove()

    def _step(self) -> None:
        holds = self.advisory is None or self.advisory.hold()
        try:
            holds = holds and try_acquire_lease(self.holder, self.ttl)
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("scheduler lease check failed: %s", exc)
            holds = False
        if holds and not self.leading:
            log.info("%s now runs the scheduler", self.holder)
            self.leading = True
            try:
                self.on_elected()
            except Exception:
                log.exception("scheduler failed to start")
                self._depose()
                try:
                    release_lease(self.holder)
                except SQLAlchemyError:
                    db.session.rollback()
                return
        elif not holds and self.leading:
            log.warning("%s lost the scheduler lease", self.holder)
            self._depose()
        if self.leading and self.on_tick is not None:
            try:
                self.on_tick()
            except Exception:
                db.session.rollback()
                log.exception("scheduler reconciliation failed")

    def _depose(self) -> None:
        self.leading = False
        try:
            self.on_deposed()
        except Exception:
            log.exception("scheduler failed to stop")

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
