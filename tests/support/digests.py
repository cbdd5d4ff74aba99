"""Helpers for digest, release, scheduling and sending tests: rows made fast, workers run as
real subprocesses, and what arrived at the SMTP server read back."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from newsletter.domain.api_tokens import issue_api_token
from newsletter.extensions import db
from newsletter.models import (
    Digest,
    Release,
    SchedulerLease,
    Subscriber,
    SubscriberStatus,
    User,
    utcnow,
)
from tests.support.processes import ROOT, worker_command, worker_environment


def subscriber_values(
    email: str, *, language: str = "fr", status: str = SubscriberStatus.CONFIRMED
) -> dict[str, Any]:
    """The columns of a subscriber who gave consent just now (and confirmed, when that is the
    status): what an ordinary row holds before any test changes it."""
    now = utcnow()
    return {
        "email": email,
        "email_key": email.casefold(),
        "name": None,
        "language": language,
        "status": status,
        "created_at": now,
        "consent_at": now,
        "confirmed_at": now if status == SubscriberStatus.CONFIRMED else None,
        "hard_bounces": 0,
    }


def add_subscribers(
    count: int,
    *,
    language: str = "fr",
    status: str = SubscriberStatus.CONFIRMED,
    prefix: str | None = None,
    domain: str = "example.org",
) -> list[str]:
    """Insert ``count`` subscribers in one statement; returns their addresses. Commits."""
    prefix = prefix or f"{status}-{language}"
    rows = [
        subscriber_values(f"{prefix}-{index}@{domain}", language=language, status=status)
        for index in range(count)
    ]
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(Subscriber), rows[start : start + 2000])
    db.session.commit()
    return [row["email"] for row in rows]


def add_release(
    *,
    language: str = "fr",
    title: str = "Communiqué",
    published_at: datetime | None = None,
    **values: Any,
) -> Release:
    release = Release(
        language=language,
        title=title,
        summary=values.pop("summary", f"Résumé de {title}"),
        body_html=values.pop("body_html", "<p>Texte</p>"),
        published_at=published_at or utcnow() - timedelta(hours=1),
        **values,
    )
    db.session.add(release)
    db.session.commit()
    return release


def start_digest(language: str = "en") -> int:
    """A one-off digest of ``language``, run as the scheduler would: its deliveries are queued
    for a worker to send. Returns its id. Commits."""
    from newsletter.delivery.digests import run_digest
    from newsletter.domain.digests import create_digest

    digest = create_digest({"language": language})
    db.session.commit()
    assert run_digest(digest.id).result == "sending"
    return digest.id


def start_digest_to(count: int, language: str = "en", prefix: str | None = None) -> int:
    """``count`` new confirmed readers of ``language``, one release, and a digest of it queued
    for them (``start_digest``). Returns the digest's id."""
    add_subscribers(count, language=language, prefix=prefix)
    add_release(language=language)
    return start_digest(language)


def staff_token(email: str = "staff@example.org") -> str:
    """A staff user with an API token (no password machinery needed)."""
    user = User(
        email=email,
        email_key=email.casefold(),
        password_hash="x",
        is_staff=True,
        staff_role="owner",
    )
    db.session.add(user)
    db.session.flush()
    token = issue_api_token(user, name="tests")
    db.session.commit()
    return token


def digest_row(digest_id: int) -> Digest:
    db.session.expire_all()
    digest = db.session.get(Digest, digest_id)
    assert digest is not None
    return digest


def lease_holder() -> str | None:
    db.session.expire_all()
    lease = db.session.scalar(select(SchedulerLease))
    db.session.rollback()
    return lease.holder if lease else None


def recipients_count(messages) -> Counter[str]:
    """How many messages each address received."""
    return Counter(rcpt.casefold() for message in messages for rcpt in message.rcpt_tos)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")


class WorkerProcess:
    """``python -m flask --app newsletter worker`` as a real subprocess."""

    def __init__(
        self,
        *,
        database_url: str,
        smtp_port: int,
        name: str,
        log_dir: Path,
        until_idle: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            worker_command(name, until_idle=until_idle),
            cwd=ROOT,
            env=worker_environment(database_url, smtp_port, env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when a machine dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def wait(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
