"""One relay cap for the whole deployment: ``SEND_MAX_RATE`` messages a second across every
worker process and machine, digests and outbox alike, plus optional per-domain caps.

The count lives in the ``limits`` package's storage (the one Flask-Limiter already uses): with
``redis://`` every worker shares one moving window per cap; with ``memory://`` (one process,
development) the cap is per process. Inside a process, sends are also spaced evenly (one every
``1/rate`` seconds) so the relay sees a steady flow, not bursts at each window edge.
"""

from __future__ import annotations

import threading
import time

from flask import Flask
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# How long a refused sender sleeps at most before asking the shared window again.
SHARED_WAIT_MAX_SECONDS = 0.25
EXTENSION_KEY = "newsletter_send_rate"


def per_second(rate: float) -> RateLimitItem:
    """``rate`` messages a second as a ``limits`` item (fractions become "1 per N seconds")."""
    if rate >= 1:
        return RateLimitItemPerSecond(max(1, round(rate)), 1)
    return RateLimitItemPerSecond(1, max(1, round(1 / rate)))


def parse_domain_rates(text: str) -> dict[str, float]:
    """``"gmail.com=20,outlook.com=5"`` → ``{"gmail.com": 20.0, "outlook.com": 5.0}``."""
    rates: dict[str, float] = {}
    for part in text.split(","):
        domain, _, value = part.strip().partition("=")
        if domain and value:
            rates[domain.strip().casefold()] = float(value.rstrip("/s"))
    return rates


class Pacer:
    """Evenly spaced sends within one process (thread-safe)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class SendRateLimiter:
    """``wait(recipient)`` returns when one more message may go to the relay."""

    def __init__(
        self,
        rate: float,
        *,
        storage_uri: str = "memory://",
        namespace: str = "newsletter-send",
        domain_rates: dict[str, float] | None = None,
    ) -> None:
        self.rate = rate if rate and rate > 0 else 0.0
        self.namespace = namespace
        self.pacer = Pacer(self.rate)
        self.domain_rates = domain_rates or {}
        self.shared = None
        self.item = per_second(self.rate) if self.rate else None
        self.domain_items = {d: per_second(r) for d, r in self.domain_rates.items() if r > 0}
        shared_storage = not storage_uri.startswith("memory://")
        if (self.rate and shared_storage) or self.domain_items:
            self.shared = MovingWindowRateLimiter(storage_from_string(storage_uri))

    @property
    def interval(self) -> float:
        return self.pacer.interval

    def wait(self, recipient: str | None = None, *, domain_taken: bool = False) -> None:
        """Block until the relay (and, unless ``domain_taken``, the recipient's domain) takes
        one more message."""
        if not domain_taken:
            self.wait_for_domain(recipient)
        self.pacer.wait()
        if self.shared is not None and self.item is not None:
            self._take(self.item, "relay")

    def take_domain_now(self, recipient: str | None) -> bool:
        """Count one message against the recipient's domain cap if it has room right now;
        False (nothing counted) when the domain is at its cap. Always True for domains
        without a cap, so a sender can go on with other domains instead of waiting."""
        item, domain = self._domain_item(recipient)
        if item is None:
            return True
        assert self.shared is not None
        return self.shared.hit(item, self.namespace, "domain", domain)

    def wait_for_domain(self, recipient: str | None) -> None:
        item, domain = self._domain_item(recipient)
        if item is not None:
            self._take(item, "domain", domain)

    def _domain_item(self, recipient: str | None) -> tuple[RateLimitItem | None, str]:
        if not recipient or not self.domain_items:
            return None, ""
        domain = recipient.rpartition("@")[2].casefold()
        return self.domain_items.get(domain), domain

    def _take(self, item: RateLimitItem, *identifiers: str) -> None:
        assert self.shared is not None
        while not self.shared.hit(item, self.namespace, *identifiers):
            reset_at = self.shared.get_window_stats(item, self.namespace, *identifiers).reset_time
            time.sleep(min(max(reset_at - time.time(), 0.001), SHARED_WAIT_MAX_SECONDS))


def send_rate_limiter(app: Flask) -> SendRateLimiter:
    """The process's one limiter (digest senders and the outbox share it)."""
    limiter = app.extensions.get(EXTENSION_KEY)
    if limiter is None:
        limiter = SendRateLimiter(
            float(app.config.get("SEND_MAX_RATE") or 0),
            storage_uri=app.config.get("SEND_RATE_STORAGE_URI") or "memory://",
            namespace=app.config.get("SEND_RATE_NAMESPACE") or "newsletter-send",
            domain_rates=parse_domain_rates(app.config.get("SEND_DOMAIN_RATES") or ""),
        )
        app.extensions[EXTENSION_KEY] = limiter
    return limiter
