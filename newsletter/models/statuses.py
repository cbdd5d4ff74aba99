"""The status vocabularies of the tables, in one place: each is stored as its string value and
is what the API, the CSV exports and the console show (the contract's words)."""

from __future__ import annotations

import enum


class SubscriberStatus(enum.StrEnum):
    """Where an address stands: double opt-in pending, confirmed, or gone (and why)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class OutboxStatus(enum.StrEnum):
    """A transactional message's way through the outbox; ``failed`` is after the last try."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    """One digest to one subscriber; ``cancelled`` when the digest or the subscriber went away."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ScheduleStatus(enum.StrEnum):
    """A recurring digest: firing, paused by staff, or ended for good."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class DigestStatus(enum.StrEnum):
    """The contract's statuses; pausing is a flag and cancelling a failure with a reason."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
