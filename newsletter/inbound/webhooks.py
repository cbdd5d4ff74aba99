"""Provider webhooks (Amazon SES over SNS, Postmark) turned into the processor's verdicts.

The caller has checked the payload's authenticity (SNS signature, Postmark token); the
addresses it names are then trusted, like a return-path token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..config import INBOUND_RAW_KEEP_BYTES
from ..extensions import db
from ..models import InboundKind, InboundMessage, utcnow
from .classify import Classification
from .processor import apply_classification


def _text(value: object, limit: int = 300) -> str:
    return str(value)[:limit] if value is not None else ""


def ses_classifications(notification: Mapping[str, Any]) -> list[Classification]:
    """SES bounce/complaint notification (``notificationType`` or event ``eventType``)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    found: list[Classification] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        permanent = bounce.get("bounceType") == "Permanent"
        for recipient in bounce.get("bouncedRecipients") or []:
            if not isinstance(recipient, dict) or not recipient.get("emailAddress"):
                continue
            status = _text(recipient.get("status"), 16) or None
            found.append(
                Classification(
                    InboundKind.HARD_BOUNCE if permanent else InboundKind.SOFT_BOUNCE,
                    status,
                    addresses=[_text(recipient["emailAddress"], 320)],
                    detail=f"SES {bounce.get('bounceType')} bounce "
                    f"({_text(bounce.get('bounceSubType'), 40)})",
                )
            )
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = _text(complaint.get("complaintFeedbackType"), 40) or "abuse"
        for recipient in complaint.get("complainedRecipients") or []:
            if isinstance(recipient, dict) and recipient.get("emailAddress"):
                found.append(
                    Classification(
                        InboundKind.COMPLAINT,
                        addresses=[_text(recipient["emailAddress"], 320)],
                        detail=f"complaint ({feedback}) reported by Amazon SES",
                    )
                )
    return found


def postmark_classifications(event: Mapping[str, Any]) -> list[Classification]:
    """Postmark ``Bounce`` and ``SpamComplaint`` webhooks."""
    record = event.get("RecordType")
    email = _text(event.get("Email"), 320)
    if not email:
        return []
    if record == "Bounce":
        hard = event.get("Type") in {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
        return [
            Classification(
                InboundKind.HARD_BOUNCE if hard else InboundKind.SOFT_BOUNCE,
                addresses=[email],
                detail=f"Postmark {_text(event.get('Type'), 40)}",
            )
        ]
    if record == "SpamComplaint":
        return [
            Classification(
                InboundKind.COMPLAINT,
                addresses=[email],
                detail="complaint (abuse) reported by Postmark",
            )
        ]
    return []


def record_webhook(source: str, payload: Mapping[str, Any], found: list[Classification]) -> int:
    """Record one inbound row per verdict (or one ``unknown`` row) and apply each; commits."""
    raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")[:INBOUND_RAW_KEEP_BYTES]
    verdicts = found or [Classification(InboundKind.UNKNOWN, detail="event of no interest")]
    for classification in verdicts:
        row = InboundMessage(
            source=source, received_at=utcnow(), size=len(raw), raw=raw, kind=InboundKind.PENDING
        )
        db.session.add(row)
        db.session.flush()
        row.outcome = apply_classification(row, classification)[:500]
        row.processed_at = utcnow()
    db.session.commit()
    return len(verdicts)
