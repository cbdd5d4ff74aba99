"""Tables. Times are naive UTC everywhere (SQLite keeps no zone); ``utcnow()`` makes them.

Models never commit: the edge (a view, a job, a command) owns the transaction.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .config import DEFAULT_TIMEZONE
from .extensions import db

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Current time as naive UTC, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class Subscriber(db.Model):
    """A newsletter address and the consent record a regulator asks for."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # As typed (normalised by email-validator): what we write to.
    email: Mapped[str] = mapped_column(String(320))
    # Case-folded form: one row per address whatever its case.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="fr")
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Consent: when, from where, and how it was confirmed or withdrawn.
    consent_at: Mapped[datetime | None] = mapped_column(DateTime)
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    consent_page: Mapped[str | None] = mapped_column(String(2000))
    consent_user_agent: Mapped[str | None] = mapped_column(String(400))
    consent_source: Mapped[str | None] = mapped_column(String(32))  # form, api, import, account
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_ip: Mapped[str | None] = mapped_column(String(45))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribe_method: Mapped[str | None] = mapped_column(String(32))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    # Why consent ended when it was not the subscriber's own click (a complaint, a bounce).
    unsubscribe_reason: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_subscribers_status_language", "status", "language", "id"),)


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(db.Model):
    """A fully rendered message waiting for the worker; written in the request's transaction."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    # Case-folded recipient, for per-address caps.
    recipient_key: Mapped[str] = mapped_column(String(320))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Who holds the claim: only that sender may record the outcome (issue 10).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_messages_recipient_key_kind", "recipient_key", "kind", "created_at"),
    )


class User(db.Model):
    """A site account (media professionals, and staff)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8), default="fr")
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Bumped when the password changes: sessions carrying an older value are ended.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Staff (issue 14): the role when ``is_staff`` (owner, editor, sender, viewer); a disabled
    # staff member keeps the row (the audit log names them) but can no longer act.
    staff_role: Mapped[str | None] = mapped_column(String(16))
    staff_disabled_at: Mapped[datetime | None] = mapped_column(DateTime)

    # Flask-Login protocol, kept here so the web layer needs no wrapper.
    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class OneTimeCode(db.Model):
    """A short emailed code (reset, email verification); only its keyed hash is stored."""

    __tablename__ = "one_time_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(128))
    # For an email change: the address being verified.
    new_email: Mapped[str | None] = mapped_column(String(320))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when a newer code replaced this one, or it was spent or tried too often.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_one_time_codes_user_purpose", "user_id", "purpose", "created_at"),)


class ApiToken(db.Model):
    """A staff API token; only its SHA-256 is stored, so a leaked table leaks no token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Space-separated permissions; at use time they are cut down to the owner's current role.
    # NULL (tokens from before scopes existed): the role's permissions.
    scopes: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


# The text a release is searched by, as a tsvector in its language's configuration. The archive
# query and the GIN index of migration 0006 must use this exact expression, or PostgreSQL will
# not use the index. The index lives in the migration only (PostgreSQL only, and Alembic cannot
# compare expression indexes): ``UNMANAGED_INDEXES`` keeps ``flask db check`` from flagging it.
RELEASE_SEARCH_EXPRESSION = (
    "to_tsvector(CASE WHEN language = 'fr' THEN 'french'::regconfig "
    "ELSE 'english'::regconfig END, "
    "coalesce(title, '') || ' ' || coalesce(dateline, '') || ' ' || coalesce(summary, '') "
    "|| ' ' || coalesce(body_html, ''))"
)

UNMANAGED_INDEXES = frozenset({"ix_releases_search"})


class Release(db.Model):
    """An official news release."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    dateline: Mapped[str | None] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised with nh3 on the way in
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    video_url: Mapped[str | None] = mapped_column(String(2000))
    language: Mapped[str] = mapped_column(String(8))
    published_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # Feed entry id (or link) so a re-import updates instead of duplicating.
    source_guid: Mapped[str | None] = mapped_column(String(2000), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Public archive (issue 13): the release this one translates; translations of one original
    # all point at it, so the original and its translations form one group.
    translation_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (Index("ix_releases_language_published_at", "language", "published_at"),)


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class DigestSchedule(db.Model):
    """A recurring digest: a cron expression in a named time zone."""

    __tablename__ = "digest_schedules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    cron: Mapped[str] = mapped_column(String(120))  # "minute hour day month day_of_week"
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    subject: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=ScheduleStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class DigestStatus(enum.StrEnum):
    """The contract's statuses; pausing is a flag and cancelling a failure with a reason."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


digest_releases = Table(
    "digest_releases",
    db.Model.metadata,
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True),
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
)


class Digest(db.Model):
    """One run of a digest: what was sent, to how many, and how it went."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("digest_schedules.id", ondelete="SET NULL")
    )
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.SCHEDULED)
    send_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set by the fan-out; sent and failed are recounted from deliveries as batches land.
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Rendered once per digest, personalised per recipient by substitution.
    rendered_message: Mapped[bytes | None] = mapped_column(LargeBinary)

    releases: Mapped[list[Release]] = relationship(secondary=digest_releases)

    __table_args__ = (
        # One run per schedule and due time: a job firing twice cannot send twice.
        UniqueConstraint("schedule_id", "send_at", name="uq_digests_schedule_id_send_at"),
        Index("ix_digests_status_send_at", "status", "send_at"),
        Index("ix_digests_language_status", "language", "status", "finished_at"),
    )


# A release goes into one digest per language, recorded when that digest is composed (issue 10):
# the primary key makes a second carrier impossible even if two composers ever raced.
release_carriers = Table(
    "release_carriers",
    db.Model.metadata,
    Column("language", String(8), primary_key=True),
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("digest_id", ForeignKey("digests.id", ondelete="CASCADE"), nullable=False, index=True),
)


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Delivery(db.Model):
    """One digest to one subscriber; marked sent only once the SMTP server accepted it."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Who holds the claim: only that sender may record the outcome (issue 10).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_response: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id", name="uq_deliveries_digest_subscriber"),
        Index("ix_deliveries_status_digest_id", "status", "digest_id"),
    )


class SchedulerLease(db.Model):
    """Who runs the scheduler: a lease row renewed by the holder, taken over when it lapses."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class InboundKind(enum.StrEnum):
    """What an inbound message turned out to be."""

    PENDING = "pending"  # stored, not yet processed
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    DELAYED = "delayed"  # a delay notice (DSN Action: delayed): still queued, not a bounce
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    UNKNOWN = "unknown"


class InboundMessage(db.Model):
    """One message that came back (listener, IMAP, webhook): what it was and what it changed.

    Stored raw before processing, so a crash while processing loses nothing; the raw bytes are
    dropped once it is understood and kept (capped) when it is not, for staff.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # smtp, lmtp, imap, ses, postmark
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    recipients: Mapped[str | None] = mapped_column(String(2000))
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(16), default=InboundKind.PENDING)
    # What the message changed, in words for staff ("subscriber 12 bounced", "nothing").
    outcome: Mapped[str | None] = mapped_column(String(500))
    status_code: Mapped[str | None] = mapped_column(String(16))  # DSN Status, e.g. 5.1.1
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("digests.id", ondelete="SET NULL"), index=True
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_inbound_messages_kind_received_at", "kind", "received_at"),)


class Suppression(db.Model):
    """An address that must not be mailed again (hard bounce, complaint).

    Only a keyed hash of the case-folded address is kept, so erasing a subscriber erases the
    address while the suppression still works.
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))  # hard_bounce, complaint, erased
    detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# APScheduler's job store table, declared here so the schema comes only from migrations.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    db.Model.metadata,
    Column("id", String(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


# Security (issue 11) -------------------------------------------------------------------------


class LoginThrottle(db.Model):
    """Failed logins counted per (account, client address) and per account, with the time
    before which a throttled client may not try again. Rows are keyed ``a:<user id>`` and
    ``a:<user id>:<ip>``; an attempt is counted before the password is checked, in one
    guarded UPDATE, so simultaneous guesses cannot all slip through."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime)


# --- Staff: audit log, two-factor login, outgoing webhooks (issue 14) ----------------------


class AuditEntry(db.Model):
    """Who did what, to what, when and from where. Rows are only ever inserted: no foreign key
    (an erased account or token must not take its history with it), and on PostgreSQL a
    trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_token_id: Mapped[int | None] = mapped_column(BigInteger)
    # The actor's address at the time, so the log reads without joins after a change.
    actor_label: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_ids: Mapped[str | None] = mapped_column(Text)  # comma-separated
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[str | None] = mapped_column(Text)  # JSON object


class StaffTotp(db.Model):
    """A staff member's TOTP secret; ``confirmed_at`` is set once a first code proved it."""

    __tablename__ = "staff_totp"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The last accepted time step: a code seen once is never accepted again (replay).
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class StaffRecoveryCode(db.Model):
    """One single-use recovery code, stored as a keyed hash."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebhookEndpoint(db.Model):
    """A receiver of outgoing events; disabled after repeated consecutive failures."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))  # whsec_<base64>
    events: Mapped[str] = mapped_column(Text)  # space-separated event types
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebhookDelivery(db.Model):
    """One event for one endpoint, written in the transaction of the change it reports."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )
