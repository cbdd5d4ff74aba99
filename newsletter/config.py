"""Settings, read once from the ``NEWSLETTER_*`` environment.

One place per fact: salts, expiries, limits and policies live here with the reason for their
value. This module imports nothing of ours.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# An installed package carries the top-level templates/emails/ and migrations/ in _data/ (see
# setup.py); a checkout (and an editable install) reads them where the developers keep them.
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "_data"


def _shipped_or_checkout(relative: str) -> Path:
    packaged = PACKAGE_DATA_DIR / relative
    return packaged if packaged.is_dir() else PROJECT_ROOT / relative


EMAIL_TEMPLATES_DIR = _shipped_or_checkout("templates/emails")
MIGRATIONS_DIR = _shipped_or_checkout("migrations")
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("fr", "en")  # French first: the site's primary language
DEFAULT_LANGUAGE = "fr"
# The newsroom's time zone: schedules and the console's times default to it.
DEFAULT_TIMEZONE = "Europe/Brussels"


@dataclass(frozen=True)
class TokenPurpose:
    """A signed-token purpose: its own salt so a token for one job never passes for another."""

    salt: str
    max_age: timedelta | None  # None: the token never expires


# Each purpose has its own salt; a max_age, where there is one, is enforced when verifying.
CONFIRM_SUBSCRIPTION = TokenPurpose("newsletter.subscription.confirm", timedelta(days=7))
# Unsubscribe links never expire: they live in archived mail for years, and leaving must always
# be possible (RFC 8058). The signature and the address fingerprint guard them instead.
UNSUBSCRIBE = TokenPurpose("newsletter.subscription.unsubscribe", None)
MANAGE_PREFERENCES = TokenPurpose("newsletter.subscription.preferences", timedelta(days=730))
VERIFY_EMAIL = TokenPurpose("newsletter.account.verify-email", timedelta(hours=24))
RESET_PASSWORD = TokenPurpose("newsletter.account.reset-password", timedelta(minutes=10))
CHANGE_EMAIL = TokenPurpose("newsletter.account.change-email", timedelta(hours=24))

# Subscription bombing: at most this many confirmation emails to one address per day.
CONFIRMATIONS_PER_ADDRESS_PER_DAY = 3
# RFC 5321 caps a path at 256 octets; an address longer than 254 can never be delivered.
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200
MAX_PAGE_URL_LENGTH = 2000
# Forms and JSON bodies are small; anything bigger is hostile (a 1 MB body gets 413).
MAX_CONTENT_LENGTH = 256 * 1024

# Staff console: a page of subscribers, the dashboard's window, CSV import bounds. The import
# renders one confirmation email per new pending row inside one request, so it stays bounded.
CONSOLE_PAGE_SIZE = 50
DASHBOARD_DAYS = 90
CSV_IMPORT_MAX_BYTES = 1024 * 1024
CSV_IMPORT_MAX_ROWS = 5000
# The preview re-posts the file's text with the confirm button: room for it plus the form.
CSV_IMPORT_MAX_REQUEST_BYTES = 2 * CSV_IMPORT_MAX_BYTES + 64 * 1024
# A feed file uploaded in the console (URLs are fetched with FEED_MAX_BYTES as their bound).
FEED_UPLOAD_MAX_BYTES = 2 * 1024 * 1024
# Seconds between polls of a sending digest's progress (JavaScript) or page reloads (no JS).
DIGEST_PROGRESS_POLL_SECONDS = 2

# Outbox delivery: temporary failures back off 1, 2, 4 ... minutes, capped; after this many
# attempts the message is recorded as failed so a dead address cannot clog the queue forever.
OUTBOX_MAX_ATTEMPTS = 8
OUTBOX_BACKOFF_BASE = timedelta(seconds=60)
OUTBOX_BACKOFF_CAP = timedelta(hours=2)
# A worker that claimed a message and died releases it after this long.
CLAIM_LEASE = timedelta(minutes=5)
# A subscriber is marked bounced after this many hard bounces (5xx answers) in a row.
HARD_BOUNCES_BEFORE_BOUNCED = 3

# Outgoing deliverability (issue 12): DKIM and mail streams.
# What the DKIM signature covers (RFC 6376 s.5.4, RFC 8058 s.4): a receiver must see that
# nobody added or changed the unsubscribe headers. Only those present are listed in h=.
DKIM_SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "Content-Language", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
    "Auto-Submitted",
)  # fmt: skip
# Two mail streams with their own From, return path and relay, so that complaints about the
# newsletter never hurt the delivery of account codes. Subscription confirmations are asked for
# by the person, one at a time: they travel with account mail, not with the bulk newsletter.
STREAM_TRANSACTIONAL = "transactional"
STREAM_NEWSLETTER = "newsletter"
# Outbox kinds that are newsletter mail (carry List-Unsubscribe); every other kind is account
# (transactional) mail.
NEWSLETTER_OUTBOX_KINDS = frozenset({"subscription_welcome", "digest_test"})
# A one-click unsubscribe POST made by `mail audit` against a live server gives up after this.
MAIL_AUDIT_HTTP_TIMEOUT_SECONDS = 10


# Releases and digests (issue 5).
# API listings: a client may ask for up to this many rows per page, never more.
MAX_PAGE_SIZE = 200
# A release body is an article, not a book; the request body cap (256 KB) bounds it anyway.
RELEASE_MAX_BODY_LENGTH = 100_000
RELEASE_MAX_SUMMARY_LENGTH = 2000
# Feed import: a slow or huge feed must not hang a command or the poll job.
FEED_FETCH_TIMEOUT_SECONDS = 20
FEED_MAX_BYTES = 10 * 1024 * 1024
# A digest holds at most this many releases (the newest); a longer email is not read.
DIGEST_MAX_RELEASES = 30
# A digest delivery failing temporarily is retried this many times in all, then recorded failed.
DELIVERY_MAX_ATTEMPTS = 6
# An unreachable SMTP server puts a claimed batch back for this long, without counting a try.
DELIVERY_OUTAGE_PAUSE_SECONDS = 15
# The scheduler lease row: one scheduler per database (APScheduler cannot share a job store).
SCHEDULER_LEASE_NAME = "digest-scheduler"

# Exactly-once delivery (issue 10).
# SQLite's lock wait: a writer waits this long for another before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 15
# A relay out of reach (refused, timed out) costs no try; senders wait this long, doubling up
# to the cap, before trying again, instead of spinning through the queue.
OUTAGE_BACKOFF_FIRST_SECONDS = 1.0
OUTAGE_BACKOFF_MAX_SECONDS = 30.0
# The PostgreSQL advisory lock key of the scheduler leader (any constant unique to this app).
SCHEDULER_ADVISORY_LOCK_KEY = 0x6E6C5F736368  # "nl_sch"


# Public archive (issue 13).
# Releases per archive page: a screenful on a desktop, short enough to scroll on a phone.
ARCHIVE_PAGE_SIZE = 20
# Entries in an Atom feed: readers poll it, so it carries only the newest; older ones stay on
# the archive pages.
FEED_ENTRIES = 50
# Public pages and feeds may be kept this long by browsers and a CDN in front: new releases
# show within five minutes, and conditional requests (ETag/Last-Modified) make refreshes cheap.
PUBLIC_CACHE_SECONDS = 300
# A search query is a few words; longer input is cut, not refused.
ARCHIVE_SEARCH_MAX_LENGTH = 200
# Slugs in release URLs: readable, but a URL stays short enough to share.
SLUG_MAX_LENGTH = 80
# URL sections of the archive per language: /fr/communiques/..., /en/releases/...
ARCHIVE_SECTIONS = {
    "fr": {"releases": "communiques", "digests": "lettres"},
    "en": {"releases": "releases", "digests": "digests"},
}

# Accounts (issue 3). "site" is the site's published rule; "nist" follows NIST SP 800-63B rev. 4
# (length only, no composition rules). Both refuse common passwords and the address's local part.
PASSWORD_POLICIES = ("site", "nist")
PASSWORD_MIN_LENGTH = {"site": 12, "nist": 15}
# Long enough for any passphrase; bounds the hashing work one request can ask for. Never truncated.
PASSWORD_MAX_LENGTH = 128
# argon2id at RFC 9106's "low memory" profile: stronger than OWASP's floor (19 MiB, t=2, p=1).
# Changing these makes every stored hash be upgraded at its owner's next login.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_PARALLELISM = 4
# Emailed one-time codes: 6 digits from `secrets`; a code dies after this many tries (right or
# wrong), so guessing has 5 chances in a million per code.
CODE_DIGITS = 6
CODE_MAX_ATTEMPTS = 5
# "Send a new code": at most one per minute and this many per hour for one address and purpose.
CODE_RESEND_COOLDOWN = timedelta(seconds=60)
CODES_PER_ADDRESS_PER_HOUR = 5
# How long each kind of code lives (the emailed link lives as long: same row, same expiry).
CODE_LIFETIMES = {
    "verify_email": VERIFY_EMAIL.max_age,
    "reset_password": RESET_PASSWORD.max_age,
    "change_email": CHANGE_EMAIL.max_age,
}
# Per-account brute-force guard: this many wrong passwords in a row lock logins for a while.
LOGIN_FAILURES_BEFORE_LOCK = 5
LOGIN_LOCK_DURATION = timedelta(minutes=15)
# "Someone tried to register with your address" notices: capped so they cannot be used to spam.
ACCOUNT_NOTICES_PER_ADDRESS_PER_DAY = 3


# Feedback loop (issue 12, return half): VERP return paths, inbound bounces/complaints/mailto
# unsubscribes, suppression list. Every key is derived from SECRET_KEY with its own salt, so a
# return-path token can never pass for a link token or a suppression hash, and the reverse.
RETURN_PATH_SALT = "newsletter.return-path"
# 10 base32 characters = 50 bits of HMAC: short enough for a local part (RFC 5321: 64 octets),
# far beyond guessing by mail (each guess is one message to our MX).
RETURN_PATH_MAC_CHARS = 10
# Token kinds: a digest delivery, an outbox message, a subscriber (the personal mailto).
RETURN_PATH_KINDS = {"d": "delivery", "o": "outbox", "u": "subscriber"}
SUPPRESSION_SALT = "newsletter.suppression"
# Suppression reasons that also stop account (transactional) mail. Gmail's and Yahoo's sender
# rules: an address that hard-bounced is undeliverable, so nothing goes to it; a complaint (or
# an erasure after unsubscribing) is about bulk mail only, and a reset code the person asked
# for must still reach them.
SUPPRESSED_FOR_ALL_MAIL = frozenset({"hard_bounce"})
# Soft bounces (4.x.x failures; delay notices are not bounces) are scored like Mailman's
# bounce score: the days of the last SOFT_BOUNCE_WINDOW with a soft bounce (one per day, a
# delivery counted once), and a score of this many makes the subscriber bounced.
SOFT_BOUNCES_BEFORE_BOUNCED = 3
SOFT_BOUNCE_WINDOW = timedelta(days=14)
# Inbound mail kept for staff (unknown kinds, failed processing) is cut at this size; the
# listener refuses anything larger than INBOUND_MAX_MESSAGE_BYTES at DATA (552).
INBOUND_RAW_KEEP_BYTES = 64 * 1024
INBOUND_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# Storing an inbound message gives up on a PostgreSQL lock after this long (a migration, a
# stuck transaction) so the listener answers 451 and the MTA retries, rather than holding the
# MTA's connection; SQLite's busy timeout plays the same part there.
INBOUND_STORE_LOCK_TIMEOUT_SECONDS = 10
# Messages whose processing failed are retried this many times (then left for staff).
INBOUND_MAX_ATTEMPTS = 5
# The IMAP poller: how often the worker polls, and where handled mail goes.
BOUNCE_MAILBOX_POLL_SECONDS = 60
BOUNCE_MAILBOX_DONE_FOLDER = "Processed"
IMAP_TIMEOUT_SECONDS = 30
# SNS signing certificates are only fetched from these hosts (over HTTPS): a payload cannot
# point us at a certificate of its own making.
SNS_ALLOWED_URL_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
WEBHOOK_FETCH_TIMEOUT_SECONDS = 10
WEBHOOK_MAX_CERT_BYTES = 64 * 1024


# --- Staff (issue 14) ---
# A staff invitation link: long enough to reach someone over a weekend, short enough to expire.
STAFF_INVITE = TokenPurpose("newsletter.staff.invite", timedelta(days=3))
# TOTP codes of the step before and after are accepted: phone clocks drift by a few seconds.
TOTP_VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
# Webhook retries back off by doubling up to this; a response body is read up to this size.
WEBHOOK_BACKOFF_CAP = timedelta(hours=6)
WEBHOOK_LEASE = timedelta(minutes=2)
WEBHOOK_EVENTS = (
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "digest.sent",
)
# Audit log page size in the console.
AUDIT_PAGE_SIZE = 100


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


# Security (issue 11) -------------------------------------------------------------------------
# An RFC 2047 encoded word (``=?charset?B|Q?text?=``). The email package decodes one in any
# header value it is given, and some CPython releases (3.11.7, 3.12.1: CVE-2024-6923) then fold
# a decoded CR LF out raw: a release title or digest subject holding one could add headers or
# replace the body. Titles and subjects refuse it; the serialisers encode such text themselves.
ENCODED_WORD_PATTERN = r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?="
# Login throttling instead of lock-out: a stranger's wrong guesses must not shut the owner out.
# Per (account, client address): this many wrong passwords are free, then each further try
# waits a delay doubling from the base up to the cap. Per account, from every address at once,
# the same after more failures; that throttle only holds back clients already failing on the
# account, so an owner who has not been failing always gets their password checked.
LOGIN_FREE_FAILURES_PER_CLIENT = 5
LOGIN_FREE_FAILURES_PER_ACCOUNT = 20
LOGIN_THROTTLE_BASE_DELAY = timedelta(seconds=2)
LOGIN_THROTTLE_MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten (the count starts again).
LOGIN_FAILURE_MEMORY = timedelta(hours=1)
# A logged-in session ends after this long without a request (idle) and this long after the
# login whatever happens (absolute): a cookie left on a shared computer or stolen dies.
SESSION_IDLE_SECONDS = 2 * 3600
SESSION_ABSOLUTE_SECONDS = 12 * 3600


# A signing key shorter than this is refused in production (a guessable key forges sessions
# and every emailed link); `secrets.token_urlsafe(48)` gives 64 characters.
MIN_SECRET_KEY_LENGTH = 32
# HSTS in production: browsers use HTTPS only for a year (the site is served over HTTPS there).
HSTS_HEADER = "max-age=31536000; includeSubDomains"


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


# Console feed import (SSRF): at most this many redirects, each re-checked; the whole fetch
# must finish within FEED_FETCH_TIMEOUT_SECONDS and FEED_MAX_BYTES.
FEED_MAX_REDIRECTS = 5
# Stored mail (GDPR minimisation): a delivered message's body holds live links and codes, so it
# is emptied this long after sending; the row (who, what kind, when, outcome) stays. Digest
# deliveries lose the relay's answer text likewise. The leader worker purges at this interval.
MAIL_RETENTION_DAYS = 7
# The per-message rows themselves (outbox facts, digest deliveries) are deleted after this long:
# 13 months answers a year's questions about what was sent, then the tables stop growing.
DELIVERY_HISTORY_DAYS = 400
RETENTION_PURGE_INTERVAL = timedelta(hours=1)
