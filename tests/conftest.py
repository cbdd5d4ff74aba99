"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when
``NEWSLETTER_TEST_DATABASE_URL`` is set), a real SMTP server on loopback, the app and clients.

The schema comes from ``migrations/`` only; each run gets a fresh SQLite file or a fresh
PostgreSQL schema, and each test starts from empty tables.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NEWSLETTER_SECRET_KEY", "test-secret-key-" + "x" * 32)

from newsletter import create_app  # noqa: E402
from newsletter.extensions import db, limiter  # noqa: E402
from tests.support.databases import fresh_postgres_schema, migrate  # noqa: E402
from tests.support.mailbox import Mailbox, SmtpSink  # noqa: E402

TEST_SECRET_KEY = "test-secret-key-for-signing-0123456789abcdef"


def _compile_translations() -> None:
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "-q",
            "compile",
            "-d",
            str(ROOT / "newsletter" / "translations"),
        ],
        check=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory):
    """A fresh database for this run, migrated with ``flask db upgrade``."""
    _compile_translations()
    base = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'newsletter.db'}"
        migrate(url)
        yield url
        return
    # pool_pre_ping: the admin engine survives a server restart (fault suite).
    with fresh_postgres_schema(base, "nl_test", pool_pre_ping=True) as url:
        yield url


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def smtp_sink():
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(smtp_sink: SmtpSink) -> Mailbox:
    smtp_sink.clear()
    return smtp_sink.mailbox


def make_config(database_url: str, smtp_port: int, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SECRET_KEY_FALLBACKS": [],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_URL": f"smtp://127.0.0.1:{smtp_port}?timeout=5",
        "MAIL_FROM": "Newsroom <news@example.org>",
        "PUBLIC_URL": "https://news.example.org",
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_ENABLED": True,
        "SEND_CONNECTIONS": 2,
        # Flask's test client never closes its responses, so work deferred until after the
        # response (issue 11) would never run: tests run it in the request. The timing test
        # serves the app with gunicorn, where it runs after the response as in production.
        "ACCOUNT_WORK_AFTER_RESPONSE": False,
    }
    config.update(overrides)
    return config


def clear_tables(database_url: str) -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    if database_url.startswith("postgresql"):
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f"DELETE FROM {name}"))
    db.session.commit()


@pytest.fixture
def app_config(request, database_url: str, smtp_sink: SmtpSink) -> dict:
    """Override keys here (by depending on it and mutating) before ``app`` is built."""
    config = make_config(database_url, smtp_sink.port)
    if request.node.get_closest_marker("verp"):  # the feedback-loop tests
        from tests.support.feedback import BOUNCE_ADDRESS

        config["BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
    return config


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (db 1) for a deployment-wide send cap: skipped without one, except
    in CI, where ``.ci/run`` starts it and its absence is a broken install."""
    import redis

    url = "redis://127.0.0.1:6379/1"
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
        pytest.skip("no Redis on 127.0.0.1:6379")
    return url


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (TLS servers: SMTP STARTTLS, dovecot imaps)."""
    from tests.support.tls import self_signed_certificate

    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def codec():
    """Return-path tokens as the test app signs them (feedback-loop tests)."""
    from newsletter.domain.return_paths import ReturnPathCodec

    return ReturnPathCodec(TEST_SECRET_KEY)


@pytest.fixture
def app(app_config: dict, database_url: str):
    application = create_app(app_config)
    with application.app_context():
        clear_tables(database_url)
        limiter.reset()
        db.session.remove()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def make_app(app, app_config: dict):
    """Build another app with config overrides (sharing ``app``'s database); disposed after."""
    built = []

    def build(**overrides):
        application = create_app({**app_config, **overrides})
        built.append(application)
        return application

    yield build
    for application in built:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def run_worker(app):
    """Run ``worker --until-idle`` in-process; returns its summary."""
    from newsletter.scheduling.worker import Worker

    def run():
        return Worker(app, name="test-worker").run(until_idle=True)

    return run


@pytest.fixture
def start_worker(database_url: str, smtp_sink: SmtpSink, tmp_path: Path):
    """Start ``flask worker`` subprocesses on the test database and SMTP server, each logging
    to ``tmp_path/<name>.log``; any still running are stopped after the test."""
    from tests.support.digests import WorkerProcess

    started: list[WorkerProcess] = []

    def start(name: str, *, until_idle: bool = False, env: dict[str, str] | None = None):
        worker = WorkerProcess(
            database_url=database_url,
            smtp_port=smtp_sink.port,
            name=name,
            log_dir=tmp_path,
            until_idle=until_idle,
            env=env,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Issue 10's fault counts in the summary: passing tests' prints never reach CI's output."""
    from tests.support.fault_counts import FAULT_COUNTS, summary_table

    if FAULT_COUNTS:
        terminalreporter.section("delivery fault counts")
        for line in summary_table(FAULT_COUNTS):
            terminalreporter.write_line(line)
