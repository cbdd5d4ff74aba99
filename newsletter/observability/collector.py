"""Gauges read from the database when Prometheus scrapes: the state, not what one process saw.

Each table count is one line of ``TABLE_COUNTS``; a new table (inbound bounces, complaints...)
is exported by adding a line there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..config import NEWSLETTER_OUTBOX_KINDS, STREAM_NEWSLETTER, STREAM_TRANSACTIONAL
from ..domain.feedback import BOUNCE_KINDS
from ..extensions import db
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    InboundKind,
    InboundMessage,
    OutboxMessage,
    OutboxStatus,
    SchedulerLease,
    Subscriber,
    utcnow,
)

# Every stream is shown, at 0 when nothing waits, so a dashboard never gaps.
MAIL_STREAMS = (STREAM_TRANSACTIONAL, STREAM_NEWSLETTER)
# The send rate is averaged over this window (a gauge an operator reads without rate()).
SEND_RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class TableCount:
    """``SELECT label, count(*) FROM table [WHERE ...] GROUP BY label`` as one gauge family."""

    name: str
    documentation: str
    label: str
    column: Any
    where: Any = None
    always: tuple[str, ...] = ()  # label values shown even at zero, so dashboards never gap


TABLE_COUNTS: tuple[TableCount, ...] = (
    TableCount(
        "newsletter_subscribers",
        "Subscribers by status.",
        "status",
        Subscriber.status,
        always=("pending", "confirmed", "unsubscribed", "bounced"),
    ),
    TableCount(
        "newsletter_outbox_messages",
        "Messages in the outbox (account mail and the welcome) by status.",
        "status",
        OutboxMessage.status,
        always=tuple(OutboxStatus),
    ),
    TableCount(
        "newsletter_deliveries",
        "Digest deliveries (one per digest and subscriber) by status.",
        "status",
        Delivery.status,
        always=tuple(DeliveryStatus),
    ),
    TableCount(
        "newsletter_digests",
        "Digest runs by outcome (scheduled, sending, sent, skipped, failed).",
        "status",
        Digest.status,
        always=("scheduled", "sending", "sent", "skipped", "failed"),
    ),
    # Every complaint the feedback loop recorded (a complaint about someone who had already
    # left included), by the channel it reached us through (smtp, lmtp, imap, ses, postmark).
    TableCount(
        "newsletter_recorded_complaints",
        "Complaints (ARF reports, provider webhooks) recorded, by the channel they came by.",
        "channel",
        InboundMessage.source,
        where=InboundMessage.kind == InboundKind.COMPLAINT,
    ),
)

# Not "newsletter_bounces": Prometheus reads the newsletter_bounces_total counter (subscribers
# marked bounced) as that family, and a family has one type. ``source`` as that counter's:
# "smtp", the relay refused a delivery during the send (5xx); "inbound", a DSN or provider
# webhook read by the feedback loop (hard 5.x.x or soft 4.x.x, as ``domain.feedback`` counts).
RECORDED_BOUNCES = "newsletter_recorded_bounces"
BOUNCE_SERIES = (("smtp", "hard"), ("inbound", "hard"), ("inbound", "soft"))
_BOUNCE_KIND = {InboundKind.HARD_BOUNCE: "hard", InboundKind.SOFT_BOUNCE: "soft"}


class DatabaseCollector(Collector):
    """Reads the gauges in one short transaction per scrape, inside ``app``'s context."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "newsletter_database_up", "1 when the database answered this scrape."
        )
        with self.app.app_context():
            try:
                families = list(self._read())
            except SQLAlchemyError:
                db.session.rollback()
                up.add_metric([], 0)
                yield up
                return
            finally:
                db.session.remove()
        up.add_metric([], 1)
        yield up
        yield from families

    def _recorded_bounces(self) -> GaugeMetricFamily:
        counts = dict.fromkeys(BOUNCE_SERIES, 0)
        counts["smtp", "hard"] = db.session.scalar(
            select(func.count()).where(
                Delivery.status == DeliveryStatus.FAILED, Delivery.smtp_code >= 500
            )
        )
        for kind, count in db.session.execute(
            select(InboundMessage.kind, func.count())
            .where(InboundMessage.kind.in_(BOUNCE_KINDS))
            .group_by(InboundMessage.kind)
        ):
            counts["inbound", _BOUNCE_KIND[kind]] = count
        family = GaugeMetricFamily(
            RECORDED_BOUNCES,
            "Bounces recorded: 5xx refusals during a send (source=smtp) and DSNs or provider "
            "webhooks read by the feedback loop (source=inbound), by kind (hard, soft).",
            labels=["source", "kind"],
        )
        for (source, kind), count in counts.items():
            family.add_metric([source, kind], count or 0)
        return family

    def _read(self) -> Iterator[GaugeMetricFamily]:
        session = db.session
        now = utcnow()
        for spec in TABLE_COUNTS:
            family = GaugeMetricFamily(spec.name, spec.documentation, labels=[spec.label])
            query = select(spec.column, func.count()).group_by(spec.column)
            if spec.where is not None:
                query = query.where(spec.where)
            counts = {str(value): count for value, count in session.execute(query)}
            for value in spec.always:
                counts.setdefault(str(value), 0)
            for value, count in sorted(counts.items()):
                family.add_metric([value], count)
            yield family

        yield self._recorded_bounces()

        oldest = GaugeMetricFamily(
            "newsletter_oldest_queued_age_seconds",
            "Age of the oldest message still waiting to be sent, by stream (0: none waiting).",
            labels=["stream"],
        )
        # The outbox holds both streams (the welcome is newsletter mail): its kind says which,
        # as ``delivery.streams.stream_for_kind`` has it.
        outbox_stream = case(
            (OutboxMessage.kind.in_(NEWSLETTER_OUTBOX_KINDS), STREAM_NEWSLETTER),
            else_=STREAM_TRANSACTIONAL,
        )
        since: dict[str, datetime] = {}
        for stream, created in session.execute(
            select(outbox_stream, func.min(OutboxMessage.created_at))
            .where(OutboxMessage.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING)))
            .group_by(outbox_stream)
        ):
            since[stream] = created
        # A delivery waits from the moment its digest started sending.
        digest_oldest = session.scalar(
            select(func.min(Digest.started_at))
            .join(Delivery, Delivery.digest_id == Digest.id)
            .where(Delivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.SENDING)))
        )
        if digest_oldest is not None:
            since[STREAM_NEWSLETTER] = min(
                since.get(STREAM_NEWSLETTER, digest_oldest), digest_oldest
            )
        for stream in MAIL_STREAMS:
            waited = (now - since[stream]).total_seconds() if stream in since else 0
            oldest.add_metric([stream], max(waited, 0))
        yield oldest

        window_start = now - SEND_RATE_WINDOW
        sent_recently = (
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.sent_at >= window_start
                )
            )
            or 0
        ) + (
            session.scalar(
                select(func.count()).where(
                    Delivery.status == DeliveryStatus.SENT, Delivery.updated_at >= window_start
                )
            )
            or 0
        )
        rate = GaugeMetricFamily(
            "newsletter_send_rate_messages_per_second",
            "Messages accepted by the relay over the last minute, per second (all workers).",
        )
        rate.add_metric([], sent_recently / SEND_RATE_WINDOW.total_seconds())
        yield rate

        leader = GaugeMetricFamily(
            "newsletter_scheduler_leader",
            "1 for the worker holding a live scheduler lease (none: no scheduler is running).",
            labels=["lease", "holder"],
        )
        for lease in session.scalars(select(SchedulerLease).where(SchedulerLease.expires_at > now)):
            leader.add_metric([lease.name, lease.holder], 1)
        yield leader
