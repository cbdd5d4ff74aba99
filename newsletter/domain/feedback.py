"""Figures of the feedback loop for the console: bounces and complaints per digest and lately."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import InboundKind, InboundMessage

# What the console counts as a bounce: soft ones too (they are the early warning).
BOUNCE_KINDS = (InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE)


@dataclass(frozen=True)
class FeedbackCounts:
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unknown: int = 0

    @property
    def bounces(self) -> int:
        return self.hard_bounces + self.soft_bounces


def _counts(rows: Iterable[tuple[str, int]]) -> FeedbackCounts:
    by_kind = dict(rows)
    return FeedbackCounts(
        hard_bounces=by_kind.get(InboundKind.HARD_BOUNCE, 0),
        soft_bounces=by_kind.get(InboundKind.SOFT_BOUNCE, 0),
        complaints=by_kind.get(InboundKind.COMPLAINT, 0),
        unsubscribes=by_kind.get(InboundKind.UNSUBSCRIBE, 0),
        unknown=by_kind.get(InboundKind.UNKNOWN, 0),
    )


def feedback_since(since: datetime) -> FeedbackCounts:
    """Inbound messages of each kind received since ``since``."""
    return _counts(
        db.session.execute(
            select(InboundMessage.kind, func.count(InboundMessage.id))
            .where(InboundMessage.received_at >= since)
            .group_by(InboundMessage.kind)
        ).all()
    )


def feedback_by_digest(digest_ids: Iterable[int]) -> dict[int, FeedbackCounts]:
    """Bounces and complaints traced (by their return path) to each of these digests."""
    ids = list(digest_ids)
    if not ids:
        return {}
    grouped: dict[int, list[tuple[str, int]]] = {}
    for digest_id, kind, count in db.session.execute(
        select(InboundMessage.digest_id, InboundMessage.kind, func.count(InboundMessage.id))
        .where(InboundMessage.digest_id.in_(ids))
        .group_by(InboundMessage.digest_id, InboundMessage.kind)
    ).all():
        grouped.setdefault(digest_id, []).append((kind, count))
    return {digest_id: _counts(rows) for digest_id, rows in grouped.items()}
