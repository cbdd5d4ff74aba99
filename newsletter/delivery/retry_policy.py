"""One retry and lease policy for both queues that send mail: the outbox (account mail) and the
deliveries of a digest.

Both claim rows under a lease and write an ownership token into them; a sender that dies
leaves a lease that lapses, and the row goes back to the queue. A temporary refusal (4xx) is
retried later, each wait twice the one before up to a cap; a permanent refusal (5xx), or a
temporary one on the last try, is final. A relay out of reach costs no try: the rows go back
after a short pause with their try given back. A row whose sender died on it at every try (a
poison row) is failed instead of being retried forever. Only the numbers differ per queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from ..config import (
    CLAIM_LEASE,
    DELIVERY_MAX_ATTEMPTS,
    DELIVERY_OUTAGE_PAUSE_SECONDS,
    DELIVERY_RETRY_CAP,
    OUTBOX_BACKOFF_BASE,
    OUTBOX_BACKOFF_CAP,
    OUTBOX_MAX_ATTEMPTS,
)
from ..mail.transport import DeliveryError

# What a poison row is failed with.
GAVE_UP_ON_CRASHES = "gave up: the sender stopped while sending it, every try"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one queue tries, and how long a claim holds its rows."""

    max_attempts: int
    first_retry: timedelta
    retry_cap: timedelta
    # A claim's rows are the claimer's until this long after the claim or the last renewal.
    lease: timedelta
    # A relay out of reach puts the claimed rows back for this long, without counting a try.
    outage_pause: timedelta = timedelta(seconds=DELIVERY_OUTAGE_PAUSE_SECONDS)

    def retry_delay(self, attempts: int) -> timedelta:
        """first, 2×first, 4×first ... after the first, second, third failed try; capped."""
        return min(self.first_retry * (2 ** max(attempts - 1, 0)), self.retry_cap)

    def next_attempt_at(self, attempts: int, now: datetime) -> datetime:
        """When a row refused temporarily on its ``attempts``-th try is due again."""
        return now + self.retry_delay(attempts)

    def gives_up(self, attempts: int, error: DeliveryError) -> bool:
        """True when the answer is final: a permanent refusal, or the last try used."""
        return not error.temporary or attempts >= self.max_attempts

    def lease_until(self, now: datetime) -> datetime:
        """The lease of rows claimed (or renewed) at ``now``."""
        return now + self.lease

    def untried_until(self, now: datetime) -> datetime:
        """When rows put back untried (relay out of reach) are due again."""
        return now + self.outage_pause


def costs_no_try(error: DeliveryError) -> bool:
    """Out of reach (refused, timed out): only an answer from the server costs a try."""
    return error.temporary and error.code is None


OUTBOX_POLICY = RetryPolicy(
    max_attempts=OUTBOX_MAX_ATTEMPTS,
    first_retry=OUTBOX_BACKOFF_BASE,
    retry_cap=OUTBOX_BACKOFF_CAP,
    lease=CLAIM_LEASE,
)


def delivery_policy(config: Mapping[str, Any]) -> RetryPolicy:
    """Digest deliveries: first retry and lease from the app's settings."""
    return RetryPolicy(
        max_attempts=DELIVERY_MAX_ATTEMPTS,
        first_retry=timedelta(seconds=int(config["DELIVERY_RETRY_SECONDS"])),
        retry_cap=DELIVERY_RETRY_CAP,
        lease=timedelta(seconds=int(config["DELIVERY_LEASE_SECONDS"])),
    )


# What the two queues write into their rows (``OutboxMessage`` and ``Delivery`` share these
# columns: attempts, next_attempt_at, lease_expires_at, claim_token); each adds its own status.

# A row owned by nobody: no lease, and no token, so a sender that lost it (dead, or only
# frozen) can record nothing on it any more.
UNCLAIMED: Mapping[str, None] = MappingProxyType({"lease_expires_at": None, "claim_token": None})


def claim_values(model: Any, token: str, lease_until: datetime) -> dict[str, Any]:
    """A claim takes a row until ``lease_until`` under ``token``, and costs it a try."""
    return {
        "lease_expires_at": lease_until,
        "claim_token": token,
        "attempts": model.attempts + 1,
    }


def untried_values(model: Any, policy: RetryPolicy, now: datetime) -> dict[str, Any]:
    """A claimed row put back unsent because the relay was out of reach: due again after the
    outage pause, its try given back, owned by nobody."""
    return {
        "attempts": model.attempts - 1,
        "next_attempt_at": policy.untried_until(now),
        **UNCLAIMED,
    }
