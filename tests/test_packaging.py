"""Packaging (issue 16): the sdist and the wheel carry the French catalogs, every email template
and the migrations; a wheel installed in a fresh virtualenv outside the checkout creates its
schema and, run as gunicorn + a worker, mails in French."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.support.deployment import SECRET_KEY, Deployment, wait_for_mail

pytestmark = [
    pytest.mark.slow,
    # Database-independent (its own SQLite): once per CI run is enough, in the SQLite pass.
    pytest.mark.skipif(
        bool(os.environ.get("NEWSLETTER_TEST_DATABASE_URL")),
        reason="runs in the SQLite pass of .ci/run",
    ),
]

EMAIL_TEMPLATES = sorted(path.name for path in (ROOT / "templates" / "emails").iterdir())
MIGRATIONS = sorted(path.name for path in (ROOT / "migrations" / "versions").glob("*.py"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from that sdist (not the checkout)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_sdist_carries_catalogs_templates_and_migrations(dist: Path):
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "newsletter/translations/fr/LC_MESSAGES/messages.mo" in names
    assert "newsletter/translations/fr/LC_MESSAGES/messages.po" in names
    for template in EMAIL_TEMPLATES:
        assert f"templates/emails/{template}" in names
    for migration in MIGRATIONS:
        assert f"migrations/versions/{migration}" in names
    assert {"migrations/env.py", "migrations/alembic.ini", "setup.py"} <= names


def test_the_wheel_carries_catalogs_templates_and_migrations_inside_the_package(dist: Path):
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "newsletter/translations/fr/LC_MESSAGES/messages.mo" in names
    for template in EMAIL_TEMPLATES:
        assert f"newsletter/_data/templates/emails/{template}" in names
    for migration in MIGRATIONS:
        assert f"newsletter/_data/migrations/versions/{migration}" in names
    assert not any(name.startswith(("templates/", "migrations/")) for name in names)


def test_an_installed_wheel_mails_in_french(dist: Path, tmp_path: Path, smtp_sink, mailbox):
    [wheel] = dist.glob("*.whl")
    venv = tmp_path / "venv"
    # A fresh virtualenv with no view of the checkout (no --system-site-packages, cwd outside).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    site.mkdir()
    database = site / "newsletter.db"
    deployment = Deployment(
        venv / "bin",
        site,
        {
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{database}",
            "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10",
            "NEWSLETTER_SECRET_KEY": SECRET_KEY,
            "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
            "NEWSLETTER_MAIL_FROM": "Rédaction <news@example.org>",
            "NEWSLETTER_SCHEDULER_LEASE_SECONDS": "3",
        },
        tmp_path,
    )
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import newsletter; print(newsletter.__file__)"],
        cwd=site, env=deployment.env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout

    deployment.flask("db", "upgrade")
    tables = {row[0] for row in sqlite3.connect(database).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    )}
    assert {"subscribers", "digests", "deliveries", "alembic_version"} <= tables
    token = deployment.staff_token()
    try:
        deployment.start_gunicorn(free_port(), workers=2)
        deployment.start_worker("wheel-worker")
        mailbox.clear()

        status, body = deployment.request(
            "POST", "/api/v1/subscriptions", {"email": "lectrice@example.org", "language": "fr"}
        )
        assert status == 202, body
        [confirmation] = wait_for_mail(mailbox, "lectrice@example.org")
        assert confirmation.header("Subject") == (
            "Confirmez votre abonnement à la lettre d’information"
        )
        assert confirmation.header("Content-Language") == "fr"
        assert "sans doute vous" in confirmation.text and "Bonjour" in confirmation.html
        deployment.confirm(confirmation.links()[0])
        status = sqlite3.connect(database).execute(
            "SELECT status FROM subscribers WHERE email_key = 'lectrice@example.org'"
        ).fetchone()[0]
        assert status == "confirmed"

        deployment.publish_digest(
            token,
            {
                "title": "Ouverture du nouveau pont",
                "summary": "Le pont relie les deux rives dès lundi.",
                "body": "<p>Le pont relie les deux rives.</p>",
                "url": "https://example.org/pont",
            },
        )
        received = wait_for_mail(mailbox, "lectrice@example.org", count=3)  # + the welcome
        digest = next(m for m in received if "Ouverture du nouveau pont" in m.text)
        assert digest.header("Content-Language") == "fr"
        assert "Communiqués du" in digest.text
        assert "Se désabonner" in digest.html
        assert digest.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()
