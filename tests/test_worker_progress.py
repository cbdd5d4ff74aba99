"""The worker reports the progress of a digest being sent: plain log lines when its output is
a file (journald, a log), a bar redrawn in place when it runs in a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from newsletter.delivery.digests import run_digest
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from tests.conftest import ROOT
from tests.support.digests import WorkerProcess, add_release, add_subscribers, digest_row

pytestmark = pytest.mark.slow
SIZE = 30


def start_digest(app) -> int:
    with app.app_context():
        add_subscribers(SIZE, language="en")
        add_release(language="en")
        digest = create_digest({"language": "en"})
        db.session.commit()
        assert run_digest(digest.id).result == "sending"
        return digest.id


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


def test_without_a_terminal_progress_is_plain_log_lines(app, smtp_sink, database_url, tmp_path):
    digest_id = start_digest(app)
    worker = WorkerProcess(
        database_url=database_url,
        smtp_port=smtp_sink.port,
        name="progress-log",
        log_dir=tmp_path,
        env=ENV,
    )
    try:
        wait_sent(app, digest_id)
        time.sleep(1)  # one more interval: the final line
    finally:
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
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10",
        "NEWSLETTER_SECRET_KEY": "test-secret-key-for-signing-0123456789abcdef",
        "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
        "NEWSLETTER_SCHEDULER_LEASE_SECONDS": "3",
        **ENV,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "newsletter",
            "worker",
            "--name",
            "progress-tty",
            "--poll-interval",
            "0.2",
        ],
        cwd=ROOT,
        env=env,
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


def test_an_import_shows_the_outbox_draining_in_the_workers_log(
    app, smtp_sink, mailbox, database_url, tmp_path
):
    """Importing addresses queues their confirmations; the worker says how many still wait."""
    from newsletter.delivery.imports import apply_subscriber_import
    from newsletter.domain.subscriber_import import plan_subscriber_import

    rows = "\n".join(f"reader{n}@example.org" for n in range(SIZE))
    with app.app_context():
        plan = plan_subscriber_import(f"email\n{rows}\n", "fr")
        apply_subscriber_import(plan)
        db.session.commit()
    worker = WorkerProcess(
        database_url=database_url,
        smtp_port=smtp_sink.port,
        name="progress-outbox",
        log_dir=tmp_path,
        env=ENV,
    )
    try:
        assert len(mailbox.wait_for(SIZE, timeout=60)) == SIZE
        time.sleep(1)  # one more interval: the last line
    finally:
        worker.stop()
    log = worker.log()
    waiting = [int(n) for n in re.findall(r"outbox: (\d+) messages waiting", log)]
    assert waiting and waiting[-1] == 0, log
    assert any(0 < n < SIZE for n in waiting), waiting  # seen mid-way
    assert waiting == sorted(waiting, reverse=True)
