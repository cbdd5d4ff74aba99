"""The worker reports the progress of a digest being sent: plain log lines when its output is
a file (journald, a log), a bar redrawn in place when it runs in a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest

from newsletter.extensions import db
from tests.support.digests import digest_row, start_digest_to
from tests.support.processes import ROOT, worker_command, worker_environment

pytestmark = pytest.mark.slow
SIZE = 30


def start_digest(app) -> int:
    with app.app_context():
        return start_digest_to(SIZE)


def wait_sent(app, digest_id: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            if digest_row(digest_id).status == "sent":
                return
        time.sleep(0.2)
    raise AssertionError("digest not sent")


ENV = {
    "NEWSLETTER_SEND_MAX_RATE": "15",  # two seconds of sending
    "NEWSLETTER_SEND_BATCH_SIZE": "5",
    "NEWSLETTER_WORKER_PROGRESS_SECONDS": "0.3",
}


def test_without_a_terminal_progress_is_plain_log_lines(app, start_worker):
    digest_id = start_digest(app)
    worker = start_worker("progress-log", env=ENV)
    wait_sent(app, digest_id)
    time.sleep(1)  # one more interval: the final line
    worker.stop()
    log = worker.log()
    done = [int(n) for n in re.findall(rf"digest {digest_id} \[en\]: (\d+) of {SIZE} done", log)]
    assert done and done[-1] == SIZE, log
    assert any(0 < n < SIZE for n in done), done  # seen mid-way
    assert done == sorted(done)
    assert "\r" not in log and "###" not in log


def test_in_a_terminal_progress_is_a_bar_redrawn_in_place(app, smtp_sink, database_url):
    digest_id = start_digest(app)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        worker_command("progress-tty"),
        cwd=ROOT,
        env=worker_environment(database_url, smtp_sink.port, ENV),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 60
        sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    output += os.read(controller, 65536)
                except OSError:
                    break
            if not sent:
                with app.app_context():
                    sent = digest_row(digest_id).status == "sent"
                if sent:
                    deadline = min(deadline, time.monotonic() + 1.5)
    finally:
        process.terminate()
        process.wait(30)
        os.close(controller)
    text = output.decode(errors="replace")
    frames = re.findall(rf"\rdigest {digest_id} \[en\] \[([#-]+)\] (\d+)/{SIZE}", text)
    assert frames, text[-2000:]
    counts = [int(n) for _, n in frames]
    assert any(0 < n < SIZE for n in counts), counts
    assert all(len(bar) == 30 for bar, _ in frames)
    assert f"of {SIZE} done" not in text  # the bar, not log lines


def test_an_import_shows_the_outbox_draining_in_the_workers_log(app, mailbox, start_worker):
    """Importing addresses queues their confirmations; the worker says how many still wait."""
    from newsletter.delivery.imports import apply_subscriber_import
    from newsletter.domain.subscriber_import import plan_subscriber_import

    rows = "\n".join(f"reader{n}@example.org" for n in range(SIZE))
    with app.app_context():
        plan = plan_subscriber_import(f"email\n{rows}\n", "fr")
        apply_subscriber_import(plan)
        db.session.commit()
    worker = start_worker("progress-outbox", env=ENV)
    assert len(mailbox.wait_for(SIZE, timeout=60)) == SIZE
    time.sleep(1)  # one more interval: the last line
    worker.stop()
    log = worker.log()
    waiting = [int(n) for n in re.findall(r"outbox: (\d+) messages waiting", log)]
    assert waiting and waiting[-1] == 0, log
    assert any(0 < n < SIZE for n in waiting), waiting  # seen mid-way
    assert waiting == sorted(waiting, reverse=True)
