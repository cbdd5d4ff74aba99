"""Settings: the constants here, read from the ``NEWSLETTER_*`` environment by ``load_settings``
(``config/environment.py``).

One place per fact: salts, expiries, limits and policies live here with the reason for their
value. This package imports nothing else of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # newsletter/ (this file is config/__init__)
PROJECT_ROOT = PACKAGE_DIR.parent
# An installed package carries the top-level templates/emails/ and migrations/ in _data/ (see
# setup.py); a checkout (and an editable install) reads them where the developers keep them.
PACKAGE_DATA_DIR = PACKAGE_DIR / "_data"


def _shipped_or_checkout(relative: str) -> Path:
    packaged = PACKAGE_DATA_DIR / relative
    return packaged if packaged.is_dir() else PROJECT_ROOT / relative


EMAIL_TEMPLATES_DIR = _shipped_or_checkout("templates/emails")
MIGRATIONS_DIR = _shipped_or_checkout("migrations")
TRANSLATIONS_DIR = PACKAGE_DIR / "translations"
LANGUAGES = ("fr", "en")  # French first: the site's primary language
# Each language in its own words, for language menus and switches.
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}
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
# Row ids are BIGINT on PostgreSQL and SQLite's 64-bit INTEGER: anything past this is no row.
MAX_ROW_ID = 2**63 - 1
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
# Digest deliveries stop doubling their wait at an hour (a digest is news: later is worthless).
DELIVERY_RETRY_CAP = timedelta(hours=1)
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


# Last: the environment reader uses the constants above.
from .environment import load_settings  # noqa: E402

__all__ = ["load_settings"]  # and every constant above
