"""The feedback loop for the console: bounces and complaints per digest and lately, and a
stored inbound message made readable for staff."""

from __future__ import annotations

import email
import email.message
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header

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


# What the console shows of one stored message: at most this many parts, this deep.
_MAX_PARTS = 50
_MAX_DEPTH = 10


@dataclass(frozen=True)
class MessagePart:
    content_type: str
    text: str | None  # None: not text, not shown (only its type and size are)
    size: int = 0


@dataclass(frozen=True)
class ReadableMessage:
    """A stored inbound message as text for staff: decoded headers and text parts. Nothing in
    it is markup; the page escapes all of it."""

    headers: list[tuple[str, str]]
    parts: list[MessagePart]


def _clean(text: str) -> str:
    # Undecodable bytes come back from the parser as surrogates; show them as U+FFFD.
    return text.encode("utf-8", "replace").decode("utf-8", "replace")


def _header_text(value: object) -> str:
    try:
        return _clean(str(make_header(decode_header(str(value)))))
    except Exception:  # noqa: BLE001 - a header that cannot be decoded is shown as it came
        return _clean(str(value))


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(part.get_payload()).encode("utf-8", "surrogateescape")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _collect(part: email.message.Message, found: list[MessagePart], depth: int) -> None:
    if len(found) >= _MAX_PARTS:
        return
    content_type = part.get_content_type()
    try:
        if part.is_multipart():
            children = [p for p in part.get_payload() if isinstance(p, email.message.Message)]
            if content_type.startswith("message/") or depth >= _MAX_DEPTH:
                # Report fields (delivery-status, feedback-report) and quoted messages: as the
                # text they are, not taken apart further.
                text = "\n".join(child.as_string() for child in children)
                found.append(MessagePart(content_type, _clean(text), len(text)))
                return
            for child in children:
                _collect(child, found, depth + 1)
            return
        if part.get_content_maintype() == "text":
            text = _decoded(part)
            found.append(MessagePart(content_type, _clean(text), len(text)))
        else:
            payload = part.get_payload(decode=True)
            found.append(MessagePart(content_type, None, len(payload or b"")))
    except Exception as exc:  # noqa: BLE001 - one broken part does not hide the others
        found.append(MessagePart(content_type, f"(unreadable part: {type(exc).__name__})"))


def readable_message(raw: bytes) -> ReadableMessage:
    """Headers and text of ``raw`` for staff to read; never raises on malformed mail."""
    try:
        message = email.message_from_bytes(raw)
        headers = [(_clean(str(name)), _header_text(value)) for name, value in message.items()]
        parts: list[MessagePart] = []
        _collect(message, parts, 0)
        return ReadableMessage(headers, parts)
    except Exception:  # noqa: BLE001 - unparseable: the bytes as text, nothing lost
        text = raw.decode("utf-8", "replace")
        return ReadableMessage([], [MessagePart("application/octet-stream", text, len(raw))])
