"""The worker process: sends what is queued and, when it holds the lease, runs the scheduler.

Any number of workers may run against one database; the database decides who claims what.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field

from flask import Flask

from ..delivery.outbox import deliver_outbox_batch, pending_outbox_count
from ..extensions import db
from ..mail.transport import DeliveryError, open_transport

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


class Worker:
    def __init__(self, app: Flask, *, name: str | None = None, poll_interval: float = 1.0):
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.stopping = threading.Event()

    def stop(self, *_args: object) -> None:
        self.stopping.set()

    def run(self, *, until_idle: bool = False) -> WorkSummary:
        summary = WorkSummary()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        with self.app.app_context():
            transport = open_transport(self.app.config["MAIL_URL"])
            try:
                while not self.stopping.is_set():
                    summary.passes += 1
                    try:
                        claimed = deliver_outbox_batch(transport)
                    except DeliveryError as exc:  # pragma: no cover - recorded per message
                        log.warning("delivery pass failed: %s", exc)
                        claimed = 0
                    summary.outbox_claimed += claimed
                    if until_idle:
                        if pending_outbox_count() == 0 or claimed == 0:
                            break
                        continue
                    if claimed == 0:
                        self.stopping.wait(self.poll_interval)
            finally:
                transport.close()
                db.session.remove()
        return summary
