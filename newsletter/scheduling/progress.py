"""Progress of long work in the worker: digests being sent, and the outbox draining (an import
of thousands of addresses queues as many confirmation emails). A bar redrawn in place when
stderr is a terminal, a plain log line per digest (and for the outbox) and interval otherwise
(journald, files)."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..delivery.outbox import pending_outbox_count
from ..domain.digests import digest_progress
from ..extensions import db
from ..models import Digest, DigestStatus

log = logging.getLogger(__name__)

BAR_WIDTH = 30
# A terminal redraws often; a log gets one line per digest this often (and when one ends).
TTY_INTERVAL_SECONDS = 0.5


class SendProgress:
    def __init__(self, app: Flask, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = (
            TTY_INTERVAL_SECONDS if self.tty else float(app.config["WORKER_PROGRESS_SECONDS"])
        )
        self._next = 0.0
        self._shown: dict[int, int] = {}  # digest id -> done, as last reported
        self._outbox_shown = 0  # messages waiting in the outbox, as last reported
        self._bar_drawn = False

    def tick(self) -> None:
        """Report if the interval has passed; cheap otherwise."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        try:
            with self.app.app_context():
                rows = [
                    (digest.id, digest.language, digest_progress(digest))
                    for digest in db.session.scalars(
                        select(Digest).where(Digest.status == DigestStatus.SENDING)
                    )
                ]
                finished = [
                    (digest.id, digest.language, digest_progress(digest))
                    for digest in db.session.scalars(
                        select(Digest).where(
                            Digest.id.in_(list(self._shown)),
                            Digest.status != DigestStatus.SENDING,
                        )
                    )
                ] if self._shown else []
                waiting = pending_outbox_count()
                db.session.remove()
        except SQLAlchemyError:
            return  # the send loop reports database trouble; progress just waits
        if self.tty:
            self._draw(rows, waiting)
            for digest_id, *_ in finished:
                self._shown.pop(digest_id, None)
            return
        if waiting != self._outbox_shown:
            log.info("outbox: %s messages waiting", waiting)
            self._outbox_shown = waiting
        for digest_id, language, progress in rows + finished:
            if self._shown.get(digest_id) != progress.done:
                log.info(
                    "digest %s [%s]: %s of %s done (%s sent, %s failed, %s pending)",
                    digest_id, language, progress.done, progress.recipients, progress.sent,
                    progress.failed, progress.pending, extra={"digest_id": digest_id},
                )
        self._shown = {digest_id: progress.done for digest_id, _, progress in rows}

    def _draw(self, rows: list, waiting: int = 0) -> None:
        if not rows and not waiting:
            if self._bar_drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._bar_drawn = False
            return
        parts = []
        for digest_id, language, progress in rows:
            total = max(progress.recipients, 1)
            filled = int(BAR_WIDTH * progress.done / total)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            parts.append(
                f"digest {digest_id} [{language}] [{bar}] {progress.done}/{progress.recipients}"
            )
            self._shown[digest_id] = progress.done
        if waiting:
            parts.append(f"outbox {waiting} waiting")
        self.stream.write("\r" + "  ".join(parts) + "\x1b[K")
        self.stream.flush()
        self._bar_drawn = True
