"""Fan-out of one digest to a large list on PostgreSQL: seconds, and the peak memory of the
process that does it, which must not grow with the list.

The fan-out runs in a fresh child process (``python -m bench.fanout run URL DIGEST_ID``) so its
peak resident memory (``ru_maxrss``) is its own and nothing else's. The baseline is the same
``INSERT ... SELECT`` written by hand and run through psycopg: the database's own floor.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from sqlalchemy import text

from .common import ROOT, Figure, bench_app, fresh_database, log
from .content import add_confirmed_subscribers, add_releases

LANGUAGE = "fr"


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child_main(database_url: str, digest_id: int) -> None:
    """In the child: build the app, run the digest (compose, render, fan out), report JSON."""
    from newsletter.delivery.digests import run_digest

    with bench_app(database_url, "file:///nonexistent-bench-mail"):
        before = _rss_kib()
        started = time.monotonic()
        outcome = run_digest(digest_id)
        seconds = time.monotonic() - started
        after = _rss_kib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "recipients": outcome.recipients,
                "result": outcome.result,
                "rss_before_kib": before,
                "peak_rss_kib": after,
            }
        )
    )


def raw_fan_out(digest_id: int) -> float:
    """The hand-written statement, timed on its own connection (inside an app context)."""
    from newsletter.extensions import db

    started = time.monotonic()
    db.session.execute(
        text(
            "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, "
            "next_attempt_at, updated_at) "
            "SELECT :digest_id, id, 'queued', 0, now(), now() FROM subscribers "
            "WHERE status = 'confirmed' AND language = :language"
        ),
        {"digest_id": digest_id, "language": LANGUAGE},
    )
    db.session.commit()
    return time.monotonic() - started


def measure(size: int) -> dict:
    from newsletter.domain.digests import create_digest
    from newsletter.extensions import db

    with fresh_database("postgres") as url:
        with bench_app(url, "file:///nonexistent-bench-mail"):
            log(f"fan-out: inserting {size:,} subscribers")
            add_confirmed_subscribers(size, LANGUAGE)
            add_releases(LANGUAGE, 10)
            raw_digest = create_digest({"language": LANGUAGE})
            service_digest = create_digest({"language": LANGUAGE})
            db.session.commit()
            raw_id, service_id = raw_digest.id, service_digest.id
            # As on a live database: statistics and visibility map up to date.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE subscribers"))
            raw_seconds = raw_fan_out(raw_id)
            db.session.execute(text("TRUNCATE deliveries"))
            db.session.commit()
        log(f"fan-out: {size:,} by hand in {raw_seconds:.2f}s; now the service in a child")
        completed = subprocess.run(
            [sys.executable, "-m", "bench.fanout", "run", url, str(service_id)],
            cwd=ROOT,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"fan-out child failed: {completed.stderr[-3000:]}")
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        if report["recipients"] != size:
            raise AssertionError(f"fan-out wrote {report['recipients']} rows, expected {size}")
    report["raw_seconds"] = raw_seconds
    report["size"] = size
    log(
        f"fan-out: {size:,} in {report['seconds']:.2f}s, peak RSS "
        f"{report['peak_rss_kib'] / 1024:.0f} MiB (before {report['rss_before_kib'] / 1024:.0f})"
    )
    return report


def fanout_figures(*, full: bool) -> list[Figure]:
    sizes = [100_000, 1_000_000] if full else [10_000, 100_000]
    reports = [measure(size) for size in sizes]
    figures = []
    for report in reports:
        figures.append(
            Figure(
                f"fan-out {report['size']:,} (PostgreSQL): seconds",
                report["seconds"],
                "s",
                report["raw_seconds"],
                "same INSERT...SELECT by hand",
                better="lower",
                note="one statement, incl. compose+render",
            )
        )
    small, large = reports[0], reports[-1]
    for report in reports:
        figures.append(
            Figure(
                f"fan-out {report['size']:,}: peak RSS of the worker",
                report["peak_rss_kib"] / 1024,
                "MiB",
                small["peak_rss_kib"] / 1024,
                f"peak at {small['size']:,}",
                goal="flat (~1x)",
                note=f"{(report['peak_rss_kib'] - report['rss_before_kib']) / 1024:+.1f} MiB "
                "during the run",
                better="lower",
            )
        )
    figures.append(
        Figure(
            f"fan-out: rows/s at {large['size']:,}",
            large["size"] / large["seconds"],
            "rows/s",
            large["size"] / large["raw_seconds"],
            "by hand",
        )
    )
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        child_main(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("usage: python -m bench.fanout run DATABASE_URL DIGEST_ID")
