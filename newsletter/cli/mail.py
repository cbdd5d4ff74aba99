"""``flask --app newsletter mail audit FILE.eml | --sample KIND``: bulk-sender rules, checked.

flask --app newsletter mail audit message.eml
flask --app newsletter mail audit --sample digest --language en

``--sample`` builds the message the way the service would send it, in a scratch copy of the
site (a temporary SQLite database and mail folder, this site's settings and DKIM key): real
rendering, real worker, real signing transport. Nothing touches the real database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..config import LANGUAGES, MAIL_AUDIT_HTTP_TIMEOUT_SECONDS
from ..delivery.audit import audit_failed, audit_message, audit_table
from ..extensions import db
from ..models import Release, Subscriber, SubscriberStatus, User, utcnow

SAMPLE_KINDS = ("digest", "confirmation", "welcome", "reset")
SAMPLE_ADDRESS = "reader@example.org"
ONE_CLICK_BODY = {"List-Unsubscribe": "One-Click"}


@click.group("mail", cls=AppGroup)
def mail_group() -> None:
    """Outgoing mail checks."""


def _post_to_public_url(public_url: str):
    def post(url: str) -> tuple[int | None, str]:
        if not url.startswith(public_url.rstrip("/") + "/"):
            return None, f"not this site's URL ({public_url})"
        request = urllib.request.Request(  # noqa: S310 - only this site's own http(s) URL
            url,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=MAIL_AUDIT_HTTP_TIMEOUT_SECONDS
            ) as response:
                return response.status, f"POST {url} -> {response.status}"
        except urllib.error.HTTPError as exc:
            return exc.code, f"POST {url} -> {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return None, f"could not reach {url}: {exc}"

    return post


def _scratch_app(directory: Path) -> Flask:
    # The factory this app was built with (the root package would pull in the web layer).
    create_app = current_app.extensions["newsletter.create_app"]
    config = dict(current_app.config)
    config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{directory}/sample.db",
        MAIL_URL=f"file://{directory}/mail",
        TRANSACTIONAL_MAIL_URL="",
        RATELIMIT_ENABLED=False,
        RATELIMIT_STORAGE_URI="memory://",
    )
    return create_app(config)


def _add_subscriber(language: str) -> Subscriber:
    now = utcnow()
    subscriber = Subscriber(
        email=SAMPLE_ADDRESS,
        email_key=SAMPLE_ADDRESS,
        language=language,
        status=SubscriberStatus.CONFIRMED,
        consent_at=now,
        confirmed_at=now,
    )
    db.session.add(subscriber)
    db.session.commit()
    return subscriber


def _make_sample(app: Flask, kind: str, language: str) -> None:
    """Have the scratch site send one message of ``kind`` (it lands in its mail folder)."""
    from ..delivery.digest_runs import run_digest
    from ..delivery.subscriptions import queue_welcome_email
    from ..domain.digests import create_digest
    from ..scheduling.worker import Worker

    client = app.test_client()
    with app.app_context():
        if kind == "digest":
            _add_subscriber(language)
            db.session.add(
                Release(
                    language=language,
                    title="Sample release",
                    summary="What a digest item looks like.",
                    body_html="<p>Sample</p>",
                    url="https://example.org/sample",
                    published_at=utcnow() - timedelta(hours=1),
                )
            )
            db.session.commit()
            digest = create_digest({"language": language})
            db.session.commit()
            run_digest(digest.id)
        elif kind == "welcome":
            queue_welcome_email(_add_subscriber(language))
            db.session.commit()
        elif kind == "reset":
            db.session.add(
                User(
                    email=SAMPLE_ADDRESS,
                    email_key=SAMPLE_ADDRESS,
                    password_hash="!",  # noqa: S106 - no password can match: a sample account
                    language=language,
                    email_verified_at=utcnow(),
                )
            )
            db.session.commit()
    if kind == "confirmation":
        client.post("/api/v1/subscriptions", json={"email": SAMPLE_ADDRESS, "language": language})
    elif kind == "reset":
        client.post("/api/v1/account/password-reset", json={"email": SAMPLE_ADDRESS})
    Worker(app, name="mail-audit-sample").run(until_idle=True)


def _one_click_in(app: Flask):
    def post(url: str) -> tuple[int | None, str]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        # A fresh client with no cookie jar: what a mailbox provider's one-click POST is.
        response = app.test_client(use_cookies=False).post(path, data=ONE_CLICK_BODY)
        return response.status_code, f"POST {path[:60]}... -> {response.status_code}"

    return post


@mail_group.command("audit")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--sample", type=click.Choice(SAMPLE_KINDS), help="check a freshly built message")
@click.option("--language", type=click.Choice(LANGUAGES), default=LANGUAGES[0], show_default=True)
@click.option(
    "--no-post",
    is_flag=True,
    help="do not POST to the one-click URL (for a FILE, the POST really unsubscribes its reader)",
)
def audit_command(file: Path | None, sample: str | None, language: str, no_post: bool) -> None:
    """Check one message against the bulk-sender rules; exits 1 when a rule fails."""
    if (file is None) == (sample is None):
        raise click.UsageError("give either FILE or --sample KIND")
    if file is not None:
        data = file.read_bytes()
        poster = None if no_post else _post_to_public_url(current_app.config["PUBLIC_URL"])
        results = audit_message(data, current_app.config, poster)
    else:
        with tempfile.TemporaryDirectory(prefix="newsletter-audit-") as directory:
            scratch = _scratch_app(Path(directory))
            # The schema comes from the migrations, run as `flask db upgrade` would be (in a
            # process of its own: Alembic's env.py reconfigures logging).
            migrated = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "newsletter", "db", "upgrade"],
                env={
                    **os.environ,
                    "NEWSLETTER_DATABASE_URL": scratch.config["SQLALCHEMY_DATABASE_URI"],
                    "NEWSLETTER_SECRET_KEY": str(scratch.config["SECRET_KEY"]),
                },
                capture_output=True,
                check=False,
            )
            if migrated.returncode != 0:
                raise click.ClickException(
                    "cannot build the scratch database: " + migrated.stderr.decode()[-2000:]
                )
            _make_sample(scratch, sample, language)
            files = sorted((Path(directory) / "mail").glob("*.eml"))
            if not files:
                raise click.ClickException(f"the {sample} sample produced no message")
            # Files are written with LF line ends; on the wire the message had CRLF.
            data = files[-1].read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            results = audit_message(
                data, scratch.config, None if no_post else _one_click_in(scratch)
            )
            with scratch.app_context():
                db.session.remove()
                db.engine.dispose()
    click.echo(audit_table(results))
    if audit_failed(results):
        raise SystemExit(1)


def register(app: Flask) -> None:
    app.cli.add_command(mail_group)
