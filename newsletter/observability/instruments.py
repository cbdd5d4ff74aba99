"""Counters and histograms, counted where things happen. Imports nothing of ours.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` (one empty directory per host, shared by the
web workers and the ``flask worker`` processes) before the processes start: prometheus-client
then keeps each process's values in files there and ``/metrics`` adds them up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

# The ``stream`` label is the mail stream a message travelled on: ``config.STREAM_TRANSACTIONAL``
# or ``config.STREAM_NEWSLETTER`` (digests, and the outbox's newsletter kinds such as the
# welcome), the same words as ``Feedback-ID`` and ``delivery/streams.py``. Callers pass them.

SUBSCRIPTIONS = Counter(
    "newsletter_subscriptions_total",
    "Subscription requests recorded (a new or a pending address).",
)
CONFIRMATIONS = Counter(
    "newsletter_confirmations_total", "Subscriptions confirmed from the emailed link."
)
UNSUBSCRIBES = Counter("newsletter_unsubscribes_total", "Subscribers who left, by how.", ["method"])
# Subscribers marked bounced, by what showed it: "smtp" (the relay refused during the digest
# send), "inbound" (a DSN or provider webhook read by the feedback loop).
BOUNCES = Counter(
    "newsletter_bounces_total", "Subscribers marked bounced, by what showed it.", ["source"]
)
MESSAGES_SENT = Counter(
    "newsletter_messages_sent_total", "Messages the SMTP relay accepted.", ["stream"]
)
MESSAGES_FAILED = Counter(
    "newsletter_messages_failed_total",
    "Messages given up on (permanent or out of tries).",
    ["stream"],
)
MESSAGES_DEFERRED = Counter(
    "newsletter_messages_deferred_total",
    "Temporary failures put back for a later try.",
    ["stream"],
)
# Buckets from a local relay (a few ms) to a slow remote one near its timeout.
SMTP_SEND_SECONDS = Histogram(
    "newsletter_smtp_send_duration_seconds",
    "Time to hand one message to the SMTP relay.",
    ["stream"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def record_sends(stream: str, *, sent: int = 0, failed: int = 0, deferred: int = 0) -> None:
    """Count the outcomes of a batch once they are recorded in the database."""
    if sent:
        MESSAGES_SENT.labels(stream).inc(sent)
    if failed:
        MESSAGES_FAILED.labels(stream).inc(failed)
    if deferred:
        MESSAGES_DEFERRED.labels(stream).inc(deferred)


@contextmanager
def smtp_timer(stream: str) -> Iterator[None]:
    """Time one hand-over to the relay (failures included: a slow refusal is slow too)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SMTP_SEND_SECONDS.labels(stream).observe(time.perf_counter() - started)
