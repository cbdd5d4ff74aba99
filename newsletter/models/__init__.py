"""Tables, one module per area. Times are naive UTC everywhere (SQLite keeps no zone);
``utcnow()`` makes them.

Models never commit: the edge (a view, a job, a command) owns the transaction. Every public
name is importable from ``newsletter.models``; importing this package registers every table on
the one metadata that migrations and ``flask db check`` compare.
"""

from __future__ import annotations

from .accounts import ApiToken, LoginThrottle, OneTimeCode, User
from .base import BigId, utcnow
from .deliveries import Delivery, DeliveryStatus, OutboxMessage, OutboxStatus
from .feedback import InboundKind, InboundMessage
from .releases import (
    RELEASE_SEARCH_EXPRESSION,
    UNMANAGED_INDEXES,
    Digest,
    DigestSchedule,
    DigestStatus,
    Release,
    ScheduleStatus,
    digest_releases,
    release_carriers,
)
from .scheduling import SchedulerLease, apscheduler_jobs
from .staff import AuditEntry, StaffRecoveryCode, StaffTotp, WebhookDelivery, WebhookEndpoint
from .subscribers import Subscriber, SubscriberStatus, Suppression

__all__ = [
    "ApiToken",
    "AuditEntry",
    "BigId",
    "Delivery",
    "DeliveryStatus",
    "Digest",
    "DigestSchedule",
    "DigestStatus",
    "InboundKind",
    "InboundMessage",
    "LoginThrottle",
    "OneTimeCode",
    "OutboxMessage",
    "OutboxStatus",
    "RELEASE_SEARCH_EXPRESSION",
    "Release",
    "ScheduleStatus",
    "SchedulerLease",
    "StaffRecoveryCode",
    "StaffTotp",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "UNMANAGED_INDEXES",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "apscheduler_jobs",
    "digest_releases",
    "release_carriers",
    "utcnow",
]
