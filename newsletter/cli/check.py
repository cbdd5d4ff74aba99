"""``flask --app newsletter check``: is this configuration ready to serve? Prints each check
and exits non-zero when one is an error (a warning does not fail it)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text

from ..config import MIN_SECRET_KEY_LENGTH
from ..extensions import db
from ..mail.transport import DeliveryError, SmtpTransport, parse_mail_url


@dataclass
class Finding:
    level: str  # "ok", "warning", "error"
    name: str
    detail: str


def _secret_key(production: bool) -> Finding:
    key = current_app.config.get("SECRET_KEY") or ""
    if len(key) >= MIN_SECRET_KEY_LENGTH:
        return Finding("ok", "secret key", f"{len(key)} characters")
    level = "error" if production else "warning"
    return Finding(level, "secret key", f"{len(key)} characters; use at least "
                   f"{MIN_SECRET_KEY_LENGTH} random ones (NEWSLETTER_SECRET_KEY)")


def _public_url(production: bool) -> Finding:
    url = current_app.config["PUBLIC_URL"]
    if urlsplit(url).scheme == "https":
        return Finding("ok", "public URL", url)
    level = "error" if production else "warning"
    return Finding(level, "public URL", f"{url} is not https:// (NEWSLETTER_PUBLIC_URL); "
                   "links in mail and cookies would travel in clear")


def _database() -> Finding:
    try:
        db.session.execute(text("SELECT 1"))
        version = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        db.session.rollback()
        return Finding("error", "database", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    from alembic.script import ScriptDirectory

    migrate = current_app.extensions["migrate"]
    heads = set(ScriptDirectory(migrate.directory).get_heads())
    if version not in heads:
        return Finding("error", "database", f"schema at {version}, code at {sorted(heads)}: run "
                       "flask --app newsletter db upgrade")
    return Finding("ok", "database", f"reachable, schema at {version}")


def _mail_relay(name: str, url: str) -> Finding:
    try:
        target = parse_mail_url(url)
    except ValueError as exc:
        return Finding("error", name, str(exc))
    if isinstance(target, Path):
        if os.access(target if target.exists() else target.parent, os.W_OK):
            return Finding("warning", name, f"mail is written to files in {target}, not sent")
        return Finding("error", name, f"{target} is not writable")
    try:
        SmtpTransport(target).verify()
    except DeliveryError as exc:
        return Finding("error", name, f"{target.host}:{target.port}: {exc}")
    return Finding("ok", name, f"{target.host}:{target.port} answers")


def _rate_limits(production: bool) -> Finding:
    uri = current_app.config.get("RATELIMIT_STORAGE_URI") or "memory://"
    if uri.startswith("memory://"):
        level = "error" if production else "warning"
        return Finding(level, "rate limits", "memory:// counts per process: with several "
                       "gunicorn workers each allows the whole limit; use redis://")
    from limits.storage import storage_from_string

    try:
        healthy = storage_from_string(uri).check()
    except Exception as exc:  # noqa: BLE001 - a missing driver or a bad URI is the finding
        return Finding("error", "rate limits", f"{uri}: {exc}")
    if not healthy:
        return Finding("error", "rate limits", f"{uri} does not answer")
    return Finding("ok", "rate limits", f"{urlsplit(uri).scheme} storage answers")


def _dkim() -> Finding | None:
    key_file = os.environ.get("NEWSLETTER_DKIM_KEY_FILE") or current_app.config.get(
        "DKIM_KEY_FILE"
    )
    if not key_file:
        return None
    path = Path(key_file)
    try:
        head = path.read_bytes()[:64]
    except OSError as exc:
        return Finding("error", "DKIM key", f"{path}: {exc.strerror}")
    if b"PRIVATE KEY" not in head:
        return Finding("error", "DKIM key", f"{path} is not a PEM private key")
    return Finding("ok", "DKIM key", f"{path} readable")


def _metrics_allowed() -> Finding:
    bad = []
    for item in current_app.config.get("METRICS_ALLOWED") or []:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            bad.append(item)
    if bad:
        return Finding("error", "metrics", f"not an address or network: {', '.join(bad)}")
    return Finding("ok", "metrics", "allowed: " + ", ".join(current_app.config["METRICS_ALLOWED"]))


def run_checks() -> list[Finding]:
    production = not current_app.config.get("DEVELOPMENT", True)
    findings = [
        Finding("ok" if production else "warning", "environment",
                "production" if production else "development (NEWSLETTER_ENV=production to serve)"),
        _secret_key(production),
        _public_url(production),
        _database(),
        _mail_relay("mail relay", current_app.config["MAIL_URL"]),
        _rate_limits(production),
        _metrics_allowed(),
    ]
    transactional = current_app.config.get("TRANSACTIONAL_MAIL_URL")
    if transactional and transactional != current_app.config["MAIL_URL"]:
        findings.append(_mail_relay("transactional relay", transactional))
    dkim = _dkim()
    if dkim is not None:
        findings.append(dkim)
    return findings


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Validate the configuration: print each check, exit 1 on any error."""
    findings = run_checks()
    colours = {"ok": "green", "warning": "yellow", "error": "red"}
    for finding in findings:
        level = click.style(f"{finding.level:<7}", fg=colours[finding.level])
        click.echo(f"{level}  {finding.name:<20} {finding.detail}")
    errors = sum(finding.level == "error" for finding in findings)
    if errors:
        click.echo(f"{errors} error(s)", err=True)
        raise SystemExit(1)
    click.echo("configuration OK")


def register(app: Flask) -> None:
    app.cli.add_command(check_command)
