"""Digests from compose to delivered, in modules along the seams of the work:

- ``digest_runs``: a run moves scheduled → sending, composes its releases, renders once and fans
  out one delivery per confirmed subscriber;
- ``delivery_queue``: claiming deliveries under a lease, putting back what a dead worker held,
  finishing a digest; ``delivery_outcomes`` records what the sends gave, and ``retry_policy``
  says when a refused delivery is tried again (shared with the outbox);
- ``sending_pool``: the threads that send claimed deliveries down persistent SMTP connections;
- ``digest_previews``: preview and test sends.

``digest_messages`` holds what they share (the rendered template, per-recipient links). This
module re-exports the names the rest of the project uses, so callers need not know the split.
"""

from __future__ import annotations

from .delivery_outcomes import BatchOutcomes, record_hard_bounces, record_outcomes
from .delivery_queue import (
    ClaimedDelivery,
    active_digest_ids,
    claim_deliveries,
    finish_if_complete,
    pending_delivery_count,
    release_expired_leases,
)
from .digest_messages import (
    UnsubscribeLinks,
    message_id,
    release_context,
    render_digest_template,
)
from .digest_previews import preview_message, queue_test_send
from .digest_runs import RunOutcome, fan_out, run_digest
from .sending_pool import (
    DeliverySender,
    DigestSendingPool,
    RateLimiter,
    SendStats,
    TemplateCache,
    send_batch,
)

__all__ = [
    "BatchOutcomes",
    "ClaimedDelivery",
    "DeliverySender",
    "DigestSendingPool",
    "RateLimiter",
    "RunOutcome",
    "SendStats",
    "TemplateCache",
    "UnsubscribeLinks",
    "active_digest_ids",
    "claim_deliveries",
    "fan_out",
    "finish_if_complete",
    "message_id",
    "pending_delivery_count",
    "preview_message",
    "queue_test_send",
    "record_hard_bounces",
    "record_outcomes",
    "release_context",
    "release_expired_leases",
    "render_digest_template",
    "run_digest",
    "send_batch",
]
