"""Flask config keys read from the ``NEWSLETTER_*`` environment, with their defaults."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import (
    DEFAULT_LANGUAGE,
    DELIVERY_HISTORY_DAYS,
    HSTS_HEADER,
    MAX_CONTENT_LENGTH,
    MIN_SECRET_KEY_LENGTH,
    SESSION_ABSOLUTE_SECONDS,
    SESSION_IDLE_SECONDS,
    SNS_ALLOWED_URL_PATTERN,
    TRANSLATIONS_DIR,
)


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _development_secret_key(instance_path: Path) -> str:
    """A key generated once into ``instance/`` so development sessions survive restarts."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def load_settings(instance_path: Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Flask config keys built from the environment (``os.environ`` unless given)."""
    env = dict(os.environ if environ is None else environ)
    development = env.get("NEWSLETTER_ENV", env.get("FLASK_ENV", "development")) != "production"
    secret_key = env.get("NEWSLETTER_SECRET_KEY")
    if not secret_key:
        if not development:
            raise RuntimeError("NEWSLETTER_SECRET_KEY is required outside development")
        secret_key = _development_secret_key(instance_path)
    database_url = env.get("NEWSLETTER_DATABASE_URL") or f"sqlite:///{instance_path}/newsletter.db"
    mail_url = env.get("NEWSLETTER_MAIL_URL") or f"file://{instance_path}/mail"
    public_url = (env.get("NEWSLETTER_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    ratelimit_enabled = _bool(env.get("NEWSLETTER_RATELIMIT_ENABLED"), True)
    return {
        "SECRET_KEY": secret_key,
        "SECRET_KEY_FALLBACKS": _list(env.get("NEWSLETTER_SECRET_KEY_FALLBACKS")),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "MAIL_URL": mail_url,
        "MAIL_FROM": env.get("NEWSLETTER_MAIL_FROM") or "Newsletter <newsletter@localhost>",
        "PUBLIC_URL": public_url,
        "ALLOWED_ORIGINS": _list(env.get("NEWSLETTER_ALLOWED_ORIGINS")),
        "RATELIMIT_STORAGE_URI": env.get("NEWSLETTER_RATELIMIT_STORAGE_URI") or "memory://",
        "RATELIMIT_ENABLED": ratelimit_enabled,
        "RATELIMIT_HEADERS_ENABLED": True,
        # Per-IP limit on subscribe posts; per-address caps on emails are separate and always on.
        "SUBSCRIBE_RATE_LIMIT": env.get("NEWSLETTER_SUBSCRIBE_RATE_LIMIT") or "10/minute;100/hour",
        "LOGIN_RATE_LIMIT": env.get("NEWSLETTER_LOGIN_RATE_LIMIT") or "10/minute;50/hour",
        # Per-IP limit on account forms that send email (register, reset, resend a code).
        "ACCOUNT_RATE_LIMIT": env.get("NEWSLETTER_ACCOUNT_RATE_LIMIT") or "10/minute;100/hour",
        "SEND_WELCOME_EMAIL": _bool(env.get("NEWSLETTER_SEND_WELCOME_EMAIL"), True),
        "PASSWORD_POLICY": env.get("NEWSLETTER_PASSWORD_POLICY") or "site",
        "LIST_ID": env.get("NEWSLETTER_LIST_ID") or "newsletter.localhost",
        # Where List-Unsubscribe's mailto goes (a mailbox staff read); default: the sender.
        "UNSUBSCRIBE_MAILTO": env.get("NEWSLETTER_UNSUBSCRIBE_MAILTO") or "",
        # DKIM signing of every outgoing message, on when all three are set (issue 12).
        "DKIM_DOMAIN": env.get("NEWSLETTER_DKIM_DOMAIN") or "",
        "DKIM_SELECTOR": env.get("NEWSLETTER_DKIM_SELECTOR") or "",
        "DKIM_KEY_FILE": env.get("NEWSLETTER_DKIM_KEY_FILE") or "",
        # Account mail (codes, verification, confirmations): its own relay and From when set;
        # empty means MAIL_URL / MAIL_FROM.
        "TRANSACTIONAL_MAIL_URL": env.get("NEWSLETTER_TRANSACTIONAL_MAIL_URL") or "",
        "TRANSACTIONAL_MAIL_FROM": env.get("NEWSLETTER_TRANSACTIONAL_MAIL_FROM") or "",
        # Concurrency and pacing of the sender: SMTP connections kept open, messages/s cap.
        "SEND_CONNECTIONS": int(env.get("NEWSLETTER_SEND_CONNECTIONS") or 4),
        "SEND_MAX_RATE": float(env.get("NEWSLETTER_SEND_MAX_RATE") or 0),  # 0 = unlimited
        "SEND_BATCH_SIZE": int(env.get("NEWSLETTER_SEND_BATCH_SIZE") or 200),
        # First digest of a language takes releases of this many days back.
        "DIGEST_FIRST_WINDOW_DAYS": int(env.get("NEWSLETTER_DIGEST_FIRST_WINDOW_DAYS") or 7),
        # A digest missed while no worker ran is still sent within this grace period.
        "DIGEST_MISFIRE_GRACE_SECONDS": int(
            env.get("NEWSLETTER_DIGEST_MISFIRE_GRACE_SECONDS") or 3600
        ),
        "FEED_POLL_URL": env.get("NEWSLETTER_FEED_POLL_URL") or "",
        "FEED_POLL_MINUTES": int(env.get("NEWSLETTER_FEED_POLL_MINUTES") or 30),
        # Digest deliveries: first retry after this many seconds, doubling, capped at an hour.
        "DELIVERY_RETRY_SECONDS": int(env.get("NEWSLETTER_DELIVERY_RETRY_SECONDS") or 60),
        # A worker that claimed deliveries and died releases them after this long.
        "DELIVERY_LEASE_SECONDS": int(env.get("NEWSLETTER_DELIVERY_LEASE_SECONDS") or 120),
        # Who runs the scheduler: the holder renews its lease every third of this, and a worker
        # that stops renewing (killed, frozen) is replaced after this long.
        # Longer than SQLite's lock wait (15 s), so a holder stuck behind a lock keeps it.
        "SCHEDULER_LEASE_SECONDS": float(env.get("NEWSLETTER_SCHEDULER_LEASE_SECONDS") or 30),
        # Feedback loop (issue 12): VERP base address, IMAP bounce mailbox, webhook secrets.
        "BOUNCE_ADDRESS": env.get("NEWSLETTER_BOUNCE_ADDRESS") or "",
        "BOUNCE_MAILBOX_URL": env.get("NEWSLETTER_BOUNCE_MAILBOX_URL") or "",
        "POSTMARK_WEBHOOK_TOKEN": env.get("NEWSLETTER_POSTMARK_WEBHOOK_TOKEN") or "",
        "SES_TOPIC_ARNS": _list(env.get("NEWSLETTER_SES_TOPIC_ARNS")),
        # Where SNS certificates and SubscribeURLs may be fetched from (tests point it home).
        "SNS_ALLOWED_URL": SNS_ALLOWED_URL_PATTERN,
        "MAX_CONTENT_LENGTH": MAX_CONTENT_LENGTH,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": public_url.startswith("https://"),
        "REMEMBER_COOKIE_SECURE": public_url.startswith("https://"),
        "WTF_CSRF_TIME_LIMIT": None,  # the session bounds the token's life
        "BABEL_DEFAULT_LOCALE": DEFAULT_LANGUAGE,
        "BABEL_TRANSLATION_DIRECTORIES": str(TRANSLATIONS_DIR),
        "DEVELOPMENT": development,
        # Operations (issue 16). /metrics answers these addresses/networks (the client address
        # as ProxyFix leaves it, so trusted proxies are honoured), or a bearer token.
        "METRICS_ALLOWED": _list(env.get("NEWSLETTER_METRICS_ALLOWED") or "127.0.0.1"),
        "METRICS_TOKEN": env.get("NEWSLETTER_METRICS_TOKEN") or "",
        # The worker's own metrics port: off (0) unless set; loopback unless told otherwise.
        "WORKER_METRICS_PORT": int(env.get("NEWSLETTER_WORKER_METRICS_PORT") or 0),
        "WORKER_METRICS_HOST": env.get("NEWSLETTER_WORKER_METRICS_HOST") or "127.0.0.1",
        # "json": one JSON object per log line (request, digest and delivery ids); else text.
        "LOG_FORMAT": (env.get("NEWSLETTER_LOG_FORMAT") or "text").strip().lower(),
        # Without a terminal, the worker logs each sending digest's progress this often.
        "WORKER_PROGRESS_SECONDS": float(env.get("NEWSLETTER_WORKER_PROGRESS_SECONDS") or 10),
        **_security_settings(env, development),
        # Exactly-once delivery (issue 10). A sender may be this many outcomes ahead of the
        # database; a SIGKILL re-sends at most that many (plus the one on the wire) a connection.
        "SEND_UNRECORDED_WINDOW": int(env.get("NEWSLETTER_SEND_UNRECORDED_WINDOW") or 1),
        # Where the deployment-wide send cap is counted (shared by every worker): Redis, or
        # memory:// for one process. Defaults to the request limiter's storage.
        "SEND_RATE_STORAGE_URI": env.get("NEWSLETTER_SEND_RATE_STORAGE_URI")
        or env.get("NEWSLETTER_RATELIMIT_STORAGE_URI")
        or "memory://",
        # Names the shared cap's counters: every worker of one deployment uses the same one.
        "SEND_RATE_NAMESPACE": env.get("NEWSLETTER_SEND_RATE_NAMESPACE") or "newsletter-send",
        # Optional per-domain caps, e.g. "gmail.com=20,outlook.com=5" (messages a second).
        "SEND_DOMAIN_RATES": env.get("NEWSLETTER_SEND_DOMAIN_RATES") or "",
        # --- Staff (issue 14) ---
        # "required": owners and senders must enrol TOTP before using the console; "optional":
        # anyone may enrol, and enrolled staff are always asked for a code.
        "STAFF_2FA": (env.get("NEWSLETTER_STAFF_2FA") or "optional").strip().lower(),
        # Exports and sends to the whole list ask for a fresh code when the last one is older.
        "STAFF_STEP_UP_SECONDS": int(env.get("NEWSLETTER_STAFF_STEP_UP_SECONDS") or 900),
        # Outgoing webhooks: first retry after this many seconds, doubling; an endpoint that
        # fails this many deliveries in a row is disabled until someone enables it again.
        "WEBHOOK_RETRY_SECONDS": float(env.get("NEWSLETTER_WEBHOOK_RETRY_SECONDS") or 30),
        "WEBHOOK_MAX_FAILURES": int(env.get("NEWSLETTER_WEBHOOK_MAX_FAILURES") or 8),
        "WEBHOOK_TIMEOUT_SECONDS": float(env.get("NEWSLETTER_WEBHOOK_TIMEOUT_SECONDS") or 10),
    }


def _security_settings(env: dict[str, str], development: bool) -> dict[str, Any]:
    """Session lifetimes, production checks and flags (issue 11)."""
    key = env.get("NEWSLETTER_SECRET_KEY") or ""
    if not development and len(key) < MIN_SECRET_KEY_LENGTH:
        raise RuntimeError(
            f"NEWSLETTER_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in "
            "production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    public_https = (env.get("NEWSLETTER_PUBLIC_URL") or "").startswith("https://")
    secure = public_https or not development
    absolute = int(env.get("NEWSLETTER_SESSION_ABSOLUTE_SECONDS") or SESSION_ABSOLUTE_SECONDS)
    return {
        "SESSION_IDLE_SECONDS": int(
            env.get("NEWSLETTER_SESSION_IDLE_SECONDS") or SESSION_IDLE_SECONDS
        ),
        "SESSION_ABSOLUTE_SECONDS": absolute,
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=absolute),
        # Hosts the console's feed import may fetch even on a private address (the
        # newsroom's own feed server); every other host must resolve to public addresses.
        "FEED_ALLOWED_HOSTS": _list(env.get("NEWSLETTER_FEED_ALLOWED_HOSTS")),
        # Reverse proxies in front that set X-Forwarded-For/-Proto (werkzeug's ProxyFix): per-IP
        # limits then key on the visitor, not on the proxy everybody shares.
        "TRUSTED_PROXIES": int(env.get("NEWSLETTER_TRUSTED_PROXIES") or 0),
        # Several deployments (or test runs) may share one Redis: their counters stay apart.
        "RATELIMIT_KEY_PREFIX": env.get("NEWSLETTER_RATELIMIT_KEY_PREFIX") or "newsletter",
        # Production cookies are Secure whatever the URL scheme (TLS ends at a proxy, say).
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "HSTS_HEADER_VALUE": HSTS_HEADER,
        "MAIL_RETENTION_DAYS": float(env.get("NEWSLETTER_MAIL_RETENTION_DAYS") or 7),
        "DELIVERY_HISTORY_DAYS": float(
            env.get("NEWSLETTER_DELIVERY_HISTORY_DAYS") or DELIVERY_HISTORY_DAYS
        ),
        # Work only registered addresses need (issuing a reset code) runs after the response,
        # so its time cannot tell a registered address from an unknown one.
        "ACCOUNT_WORK_AFTER_RESPONSE": _bool(
            env.get("NEWSLETTER_ACCOUNT_WORK_AFTER_RESPONSE"), True
        ),
    }
