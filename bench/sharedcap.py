"""One relay cap across worker processes (issue 10): two ``flask --app newsletter worker``
processes share one PostgreSQL database and the Redis-counted ``NEWSLETTER_SEND_MAX_RATE``,
and send one digest to the counting SMTP server.

Measured at the server: the aggregate rate against the cap (after the first second, which the
moving window lets through at once), how the messages split between the two workers (from
their own summaries), and lost/duplicated recipients (every accepted recipient is noted).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from .common import ROOT, SECRET_KEY, Figure, bench_app, fresh_database, log
from .content import add_confirmed_subscribers, add_releases
from .smtp_counter import CountingSmtpServer

LANGUAGE = "fr"
CAP = 50.0  # messages a second across both workers
WORKERS = 2
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"


def redis_url() -> str:
    """The Redis the cap is counted in (``BENCH_REDIS_URL`` overrides)."""
    return os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(redis_url(), socket_timeout=2).ping())
    except Exception:  # noqa: BLE001 - any failure means "skip the section"
        return False


def start_digest(recipients: int) -> list[str]:
    """Subscribers, releases and a digest already fanned out (``sending``); returns the
    addresses. Inside an app context."""
    from newsletter.delivery.digest_runs import run_digest
    from newsletter.domain.digests import create_digest
    from newsletter.extensions import db
    from newsletter.models import Subscriber

    add_confirmed_subscribers(recipients, LANGUAGE)
    add_releases(LANGUAGE, 10)
    db.session.commit()
    digest = create_digest({"language": LANGUAGE})
    db.session.commit()
    outcome = run_digest(digest.id)
    if outcome.result != "sending" or outcome.recipients != recipients:
        raise AssertionError(f"digest did not start: {outcome}")
    return list(db.session.scalars(select(Subscriber.email)))


def start_worker(name: str, database_url: str, mail_url: str, namespace: str, log_path: Path):
    """``flask --app newsletter worker --until-idle`` as its own process (its own "machine")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "FLASK_"))}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_MAIL_URL": mail_url,
            "NEWSLETTER_SECRET_KEY": SECRET_KEY,
            "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
            "NEWSLETTER_MAIL_FROM": "Newsroom <news@example.org>",
            "NEWSLETTER_SEND_MAX_RATE": f"{CAP:g}",
            "NEWSLETTER_SEND_RATE_STORAGE_URI": redis_url(),
            "NEWSLETTER_SEND_RATE_NAMESPACE": namespace,
        }
    )
    command = [sys.executable, "-m", "flask", "--app", "newsletter", "worker", "--until-idle"]
    command += ["--name", name, "--poll-interval", "0.2"]
    with log_path.open("wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def messages_sent_by(log_text: str) -> int:
    """From the worker's summary line: "..., 512 digest messages sent, ..."."""
    line = [ln for ln in log_text.splitlines() if "digest messages sent" in ln][-1]
    return int(line.split(" digest messages sent")[0].rsplit(", ", 1)[1])


def sharedcap_figures(*, full: bool) -> list[Figure]:
    recipients = 5_000 if full else 1_000
    with tempfile.TemporaryDirectory(prefix="nl-bench-cap-") as directory:
        folder = Path(directory)
        received_path = folder / "recipients.txt"
        with (
            CountingSmtpServer(
                keep_times=recipients * 2, recipients_path=str(received_path)
            ) as server,
            fresh_database("postgres") as url,
        ):
            with bench_app(url, server.url):
                expected = start_digest(recipients)
            namespace = f"nl-bench-{secrets.token_hex(4)}"
            log(f"sharedcap: {WORKERS} workers, {recipients:,} recipients, cap {CAP:g} msg/s")
            started = time.monotonic()
            logs = [folder / f"worker-{index}.log" for index in range(WORKERS)]
            workers = [
                start_worker(f"bench-{index}", url, server.url, namespace, logs[index])
                for index in range(WORKERS)
            ]
            try:
                codes = [worker.wait(timeout=recipients / CAP * 3 + 120) for worker in workers]
            finally:
                for worker in workers:
                    if worker.poll() is None:
                        worker.kill()
                        worker.wait(10)
            if codes != [0] * WORKERS:
                raise RuntimeError(
                    f"workers exited {codes}:\n" + "\n".join(p.read_text()[-2000:] for p in logs)
                )
            time.sleep(0.5)  # a late duplicate would land now
            times = sorted(server.arrival_times())
            count = server.count
        elapsed = time.monotonic() - started
        split = [messages_sent_by(path.read_text(errors="replace")) for path in logs]
        received = Counter(
            line.strip().casefold() for line in received_path.read_text().splitlines() if line
        )
    wanted = {address.casefold() for address in expected}
    lost = len(wanted - set(received))
    duplicated = sum(received.values()) - len(received)
    # The moving window lets one second's worth through at once; the steady rate comes after.
    steady = times[int(CAP) :]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    overall = (len(times) - 1) / (times[-1] - times[0])
    log(
        f"sharedcap: {count:,} messages, steady {rate:.2f} msg/s ({rate / CAP:.3f}x the cap), "
        f"first to last {overall:.2f} msg/s, split {split}, lost {lost}, duplicated "
        f"{duplicated}, {elapsed:.1f}s with worker start-up"
    )
    shares = " / ".join(f"{sent:,}" for sent in split)
    return [
        Figure(
            f"shared cap, {WORKERS} workers (PostgreSQL, Redis): rate vs the cap",
            rate,
            "msg/s",
            CAP,
            "NEWSLETTER_SEND_MAX_RATE",
            goal="0.95-1.05x",
            note=f"{recipients:,} recipients; first to last {overall:.1f} msg/s",
        ),
        Figure(
            "shared cap: messages sent by each worker",
            min(split),
            "msgs",
            max(split),
            f"split {shares}",
            note="smaller share / larger share",
        ),
        Figure(
            "shared cap: recipients lost / duplicated",
            float(lost),
            "lost",
            None,
            f"{duplicated} duplicated, {sum(received.values()):,} accepted",
            goal="0 / 0",
            better="lower",
        ),
    ]
