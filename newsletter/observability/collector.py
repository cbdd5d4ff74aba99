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
from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from ..config import NEWSLETTER_OUTBOX_KINDS, STREAM_NEWSLETTER, STREAM_TRANSACTIONAL
from ..extensions import db
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
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
    # Bounces and complaints as the tables hold them today: hard bounces are 5xx answers to a
    # delivery; a complaint is an unsubscribe whose method says so.
    TableCount(
        # Not "newsletter_bounces": Prometheus reads the newsletter_bounces_total counter
        # (subscribers marked bounced) as that family, and a family has one type.
        "newsletter_recorded_bounces",
        "Deliveries the relay refused permanently (5xx), by code.",
        "code",
        Delivery.smtp_code,
        where=and_(Delivery.status == DeliveryStatus.FAILED, Delivery.smtp_code >= 500),
    ),
    TableCount(
        "newsletter_complaints",
        "Subscribers who left by a complaint, by how it came.",
        "method",
        Subscriber.unsubscribe_method,
        where=Subscriber.unsubscribe_method.like("%complaint%"),
    ),
)


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
