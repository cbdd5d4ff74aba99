"""The README's production recipe, run as written on this machine (issue 16): a PostgreSQL
role owning a fresh database, ``flask db upgrade`` and ``flask check``, gunicorn with
deploy/gunicorn.conf.py and 2 workers, two ``flask worker`` processes, Redis for the rate
limits, the settings of deploy/newsletter.env.example; subscribe, confirm and send a digest
through it; then back up with deploy/backup.sh and restore as the README says."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from newsletter.config import STREAM_NEWSLETTER
from tests.conftest import ROOT, free_port
from tests.support.deployment import (
    SECRET_KEY,
    Deployment,
    read_env_file,
    wait_for_mail,
)

REDIS_URL = "redis://127.0.0.1:6379/7"
READERS = ["ana@example.org", "bruno@example.org", "chloe@example.org"]


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture
def pg_base() -> str:
    base = os.environ.get("NEWSLETTER_TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        pytest.skip("the production recipe runs on PostgreSQL (NEWSLETTER_TEST_DATABASE_URL)")
    return base


def pg_environment(base: str) -> dict[str, str]:
    """libpq's variables for the test server, as the postgres user (who runs backup.sh)."""
    url = make_url(base)
    return {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    }


@pytest.fixture
def recipe_database(pg_base):
    """README step 2 on the test server: a role of its own owning a database of its own, so
    the app runs without superuser rights and backup.sh dumps exactly this database."""
    name = f"nl_recipe_{secrets.token_hex(4)}"
    admin = create_engine(pg_base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    url = make_url(pg_base).set(username=name, database=name)
    try:
        yield name, url
    finally:
        with admin.connect() as connection:
            for database in (name, f"{name}_restored"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def newsletter_stream_counters(metrics: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.labels.get("stream") == STREAM_NEWSLETTER and sample.name.endswith("_total"):
                found[sample.name] = sample.value
    return found


@pytest.mark.slow
@pytest.mark.postgres_only
def test_the_production_recipe_runs_as_written(
    pg_base, recipe_database, redis_client, smtp_sink, mailbox, tmp_path
):
    name, url = recipe_database
    prefix = f"nl-recipe-{secrets.token_hex(4)}"
    database_url = url.render_as_string(hide_password=False)
    site = tmp_path / "site"
    (tmp_path / "metrics").mkdir()
    site.mkdir()
    env = {
        **read_env_file(ROOT / "deploy" / "newsletter.env.example"),
        # What differs on this machine from the example: addresses, secrets, shared services.
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10",
        "NEWSLETTER_SECRET_KEY": SECRET_KEY,
        "NEWSLETTER_RATELIMIT_STORAGE_URI": REDIS_URL,
        "NEWSLETTER_RATELIMIT_KEY_PREFIX": prefix,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "NEWSLETTER_SCHEDULER_LEASE_SECONDS": "3",
        # This checkout's code, whatever the interpreter has installed (a shared venv may hold
        # another tree's editable install); the wheel test covers running without a checkout.
        "PYTHONPATH": str(ROOT),
    }
    assert env["NEWSLETTER_ENV"] == "production"
    deployment = Deployment(Path(sys.executable).parent, site, env, tmp_path)
    try:
        deployment.flask("db", "upgrade")
        print(deployment.flask("check"))  # exit 0: the example settings are complete
        token = deployment.staff_token()
        # Installed outside any checkout, as README step 4 does (/etc/newsletter/ there).
        etc = tmp_path / "etc"
        etc.mkdir()
        shutil.copy(ROOT / "deploy" / "gunicorn.conf.py", etc / "gunicorn.conf.py")
        deployment.start_gunicorn(free_port(), workers=2, config=etc / "gunicorn.conf.py")
        deployment.start_worker("recipe-worker-1")
        deployment.start_worker("recipe-worker-2")

        for address in READERS:
            status, body = deployment.request(
                "POST", "/api/v1/subscriptions", {"email": address, "language": "fr"}
            )
            assert status == 202, body
        for address in READERS:
            [confirmation] = wait_for_mail(mailbox, address)
            assert confirmation.header("Content-Language") == "fr"
            deployment.confirm(confirmation.links()[0])
        # The rate limits live in Redis, shared by both gunicorn workers.
        assert list(redis_client.scan_iter(match=f"*{prefix}*")), "no rate-limit keys in Redis"

        digest_id = deployment.publish_digest(
            token,
            {
                "title": "Budget 2027 adopté",
                "summary": "Le conseil a voté le budget.",
                "body": "<p>Le conseil a voté.</p>",
                "url": "https://example.org/budget",
            },
        )
        for address in READERS:
            wait_for_mail(mailbox, address, count=3)  # confirmation, welcome, digest
        deadline = time.monotonic() + 60
        while True:
            status, body = deployment.request("GET", f"/api/v1/digests/{digest_id}", token=token)
            digest = json.loads(body)
            if digest["status"] == "sent" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert digest["status"] == "sent", digest
        assert digest["sent"] == len(READERS) and digest["failed"] == 0, digest
        time.sleep(1)  # nothing more arrives: each reader got exactly one digest
        for address in READERS:
            digests = [m for m in mailbox.to(address) if "Budget 2027 adopté" in m.text]
            assert len(digests) == 1, (address, len(digests))

        # /metrics through gunicorn adds up every process of the host (multiprocess mode).
        status, metrics = deployment.request("GET", "/metrics")
        assert status == 200
        counters = newsletter_stream_counters(metrics)
        # The newsletter stream: the digest, and each reader's welcome from the outbox.
        sent = digest["sent"] + len(READERS)
        assert counters.get("newsletter_messages_sent_total") == sent, counters
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()
        for key in redis_client.scan_iter(match=f"*{prefix}*"):
            redis_client.delete(key)

    # Backup with deploy/backup.sh as the postgres user, then restore with the README's
    # commands into a new database, which the app's role must be able to use.
    backups = tmp_path / "backups"
    subprocess.run(
        ["sh", str(ROOT / "deploy" / "backup.sh"), name],
        env={**pg_environment(pg_base), "BACKUP_DIR": str(backups)},
        check=True,
        timeout=120,
    )
    [dump] = backups.glob(f"{name}-*.dump")
    restored = f"{name}_restored"
    for command in restore_commands(name, restored, dump):
        subprocess.run(command, env=pg_environment(pg_base), check=True, timeout=120)
    restored_url = url.set(database=restored)
    engine = create_engine(restored_url)
    try:
        with engine.connect() as connection:  # as the app's role, not as postgres
            confirmed = set(
                connection.execute(
                    text("SELECT email FROM subscribers WHERE status = 'confirmed'")
                ).scalars()
            )
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert confirmed == set(READERS)
    assert version
    # The restored database is current and the app's to use: upgrading is a no-op, the models
    # match it, and the configuration check passes against it.
    deployment.env["NEWSLETTER_DATABASE_URL"] = restored_url.render_as_string(hide_password=False)
    deployment.flask("db", "upgrade")
    deployment.flask("db", "check")
    deployment.flask("check")


def restore_commands(role: str, database: str, dump: Path) -> list[list[str]]:
    """README step 8's restore, for this role and database (the README is checked to say it)."""
    readme = (ROOT / "README.md").read_text()
    written = [
        "createdb -O newsletter newsletter_restored",
        "pg_restore --no-owner --role=newsletter -d newsletter_restored "
        "/var/backups/newsletter/newsletter-….dump",
    ]
    for line in written:
        assert line in readme, f"README's restore no longer reads: {line}"
    return [
        ["createdb", "-O", role, database],
        ["pg_restore", "--no-owner", f"--role={role}", "-d", database, str(dump)],
    ]


def unit_settings(path: Path, instance: str) -> dict[str, list[str]]:
    """A systemd unit's [Service] settings with ``%i`` (the instance) expanded."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip().replace("%i", instance))
    return settings


def test_every_worker_instance_gets_a_port_and_every_unit_finds_its_files():
    """What the units expect is what the README puts there: worker instances 1, 2 ... 12 each
    get a valid metrics port of their own (``910%i`` gave 91010 to the tenth), and gunicorn's
    settings file is where the README installs it (a wheel puts no deploy/ under /opt)."""
    readme = (ROOT / "README.md").read_text()
    written = {
        path: int(port)
        for port, path in re.findall(r"echo NEWSLETTER_WORKER_METRICS_PORT=(\d+) > (\S+)", readme)
    }
    for instance in ("1", "2", "10", "12"):
        settings = unit_settings(ROOT / "deploy" / "newsletter-worker@.service", instance)
        values = dict(
            item.split("=", 1) for line in settings.get("Environment", []) for item in line.split()
        )
        if "NEWSLETTER_WORKER_METRICS_PORT" in values:
            assert 0 < int(values["NEWSLETTER_WORKER_METRICS_PORT"]) < 65536, (instance, values)
            continue
        # Otherwise from a file of the instance's own, which the README writes for 1 and 2.
        own = [f.lstrip("-") for f in settings.get("EnvironmentFile", []) if instance in f]
        assert own, (instance, settings)
        if instance in ("1", "2"):
            assert own[0] in written, (own, written)
    assert len(written) >= 2 and len(set(written.values())) == len(written), written
    assert all(0 < port < 65536 for port in written.values()), written

    web = unit_settings(ROOT / "deploy" / "newsletter-web.service", "")
    [command] = web["ExecStart"]
    config = command.split(" -c ", 1)[1].split()[0]
    assert f"deploy/gunicorn.conf.py {config}" in readme, config
