"""Tables, one module per area. Times are naive UTC everywhere (SQLite keeps no zone);
``utcnow()`` makes them.

Models never commit: the edge (a view, a job, a command) owns the transaction. Every public
name is importable from ``newsletter.models``; importing this package registers every table on
the one metadata that migrations and ``flask db check`` compare.
"""

from __future__ import annotations

from .accounts import ApiToken, LoginThrottle, OneTimeCode, User
from .base import BigId, utcnow
from .deliveries import Delivery
from .digests import Digest, DigestSchedule, digest_releases, release_carriers
from .feedback import InboundKind, InboundMessage
from .outbox import OutboxMessage
from .releases import RELEASE_SEARCH_EXPRESSION, UNMANAGED_INDEXES, Release
from .scheduling import SchedulerLease, apscheduler_jobs
from .staff import AuditEntry, StaffRecoveryCode, StaffTotp, WebhookDelivery, WebhookEndpoint
from .statuses import (
    DeliveryStatus,
    DigestStatus,
    OutboxStatus,
    ScheduleStatus,
    SubscriberStatus,
)
from .subscribers import Subscriber, Suppression

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
