"""What an inbound message is: a DSN (RFC 3464), an ARF complaint (RFC 5965), a mailto
unsubscribe request (RFC 2369), or unknown. Pure parsing: no database, never raises.

Who the message is about comes from return-path tokens only when a bounce address is
configured (a token cannot be forged); without one (no VERP), from the addresses flufl.bounce
finds in the bounce, which is all a site without VERP can do.
"""

from __future__ import annotations

import email
import email.message
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses

from flufl.bounce import all_failures

from ..domain.return_paths import ReturnPathCodec, ReturnPathToken
from ..models import InboundKind

log = logging.getLogger(__name__)

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MAILTO_RE = re.compile(r"<mailto:([^>?\s]+)", re.IGNORECASE)
# Headers an MTA (or dovecot's LDA) writes with the envelope recipient, and the visible ones.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")


@dataclass
class Classification:
    """The verdict on one message, and the evidence the processor acts on."""

    kind: InboundKind
    status_code: str | None = None
    # Verified tokens naming what the message is about (delivery, outbox message, subscriber).
    tokens: list[ReturnPathToken] = field(default_factory=list)
    # Addresses a bounce names, used only when no bounce address (VERP) is configured.
    addresses: list[str] = field(default_factory=list)
    detail: str = ""


def _header(message: email.message.Message, name: str) -> list[str]:
    try:
        return [str(value) for value in (message.get_all(name) or [])]
    except Exception:  # noqa: BLE001 - a header the parser cannot turn into text is absent
        return []


def _parts(message: email.message.Message) -> list[email.message.Message]:
    try:
        return list(message.walk())
    except Exception:  # noqa: BLE001
        return [message]


def _report_type(message: email.message.Message) -> str:
    try:
        if message.get_content_type() != "multipart/report":
            return ""
        return str(message.get_param("report-type") or "").lower()
    except Exception:  # noqa: BLE001
        return ""


def _embedded_headers(message: email.message.Message) -> list[email.message.Message]:
    """The original message (or its headers) a DSN or ARF report quotes."""
    found: list[email.message.Message] = []
    for part in _parts(message):
        try:
            ctype = part.get_content_type()
            if ctype == "message/rfc822":
                payload = part.get_payload()
                found.extend(p for p in (payload or []) if isinstance(p, email.message.Message))
            elif ctype == "text/rfc822-headers":
                text = part.get_payload(decode=True) or b""
                found.append(email.message_from_bytes(text))
        except Exception:  # noqa: BLE001, S112 - a broken part is skipped, the rest still read
            continue
    return found


def _delivery_status(message: email.message.Message) -> tuple[str | None, str]:
    """The worst Status of the failed recipients of a DSN, and its Action.

    Delayed recipients are left out: a delay notice says the message is still queued, and a
    delay is not a failure (the MTA reports the failure later, if it comes to that)."""
    worst: str | None = None
    worst_action = ""
    for part in _parts(message):
        try:
            if part.get_content_type() != "message/delivery-status":
                continue
            blocks = part.get_payload()
            if not isinstance(blocks, list):
                continue
            for block in blocks:
                action = str(block.get("Action", "")).strip().lower()
                match = _STATUS_RE.search(str(block.get("Status", "")))
                if match is None or action.startswith(
                    ("delivered", "relayed", "expanded", "delayed")
                ):
                    continue
                code = ".".join(match.groups())
                # A permanent failure outranks a temporary one in the same report.
                if worst is None or (code[0] == "5" and worst[0] != "5"):
                    worst, worst_action = code, action
        except Exception:  # noqa: BLE001, S112 - a broken part is skipped, the rest still read
            continue
    return worst, worst_action


def _feedback_report(message: email.message.Message) -> dict[str, str] | None:
    """The fields of an ARF ``message/feedback-report`` part, or None when there is none."""
    for part in _parts(message):
        try:
            if part.get_content_type() != "message/feedback-report":
                continue
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                fields = payload[0]
                return {k.lower(): str(v) for k, v in fields.items()}
            raw = part.get_payload(decode=True) or b""
            parsed = email.message_from_bytes(raw)
            return {k.lower(): str(v) for k, v in parsed.items()}
        except Exception:  # noqa: BLE001
            return {}
    return None


def _addresses(values: Sequence[str]) -> list[str]:
    try:
        return [address for _name, address in getaddresses(list(values)) if address]
    except Exception:  # noqa: BLE001
        return []


def _embedded_token_addresses(originals: list[email.message.Message]) -> list[str]:
    """Our own addresses in the quoted original: its personal mailto, its Return-Path."""
    found: list[str] = []
    for original in originals:
        for value in _header(original, "List-Unsubscribe"):
            found.extend(_MAILTO_RE.findall(value))
        found.extend(_addresses(_header(original, "Return-Path")))
    return found


def classify(
    raw: bytes,
    recipients: Sequence[str],
    codec: ReturnPathCodec,
    bounce_address: str,
) -> Classification:
    """Classify ``raw`` received for ``recipients`` (envelope recipients; may be empty)."""
    try:
        return _classify(raw, recipients, codec, bounce_address)
    except Exception as exc:  # noqa: BLE001 - malformed mail is unknown mail, never a crash
        log.info("unparseable inbound message: %s", exc)
        return Classification(InboundKind.UNKNOWN, detail=f"unparseable: {type(exc).__name__}")


def _classify(
    raw: bytes, recipients: Sequence[str], codec: ReturnPathCodec, bounce_address: str
) -> Classification:
    message = email.message_from_bytes(raw)
    outer = [*recipients]
    for name in _RECIPIENT_HEADERS:
        outer.extend(_addresses(_header(message, name)))
    outer_tokens = codec.find(bounce_address, outer) if bounce_address else []
    originals = _embedded_headers(message)
    quoted_tokens = (
        codec.find(bounce_address, _embedded_token_addresses(originals)) if bounce_address else []
    )
    tokens = outer_tokens + [t for t in quoted_tokens if t not in outer_tokens]

    report = _report_type(message)
    feedback = _feedback_report(message)
    if report == "feedback-report" or feedback is not None:
        fields = feedback or {}
        feedback_type = fields.get("feedback-type", "abuse").strip()[:40] or "abuse"
        reporter = (fields.get("user-agent") or fields.get("reporting-mta") or "").strip()[:80]
        addresses = _addresses([fields.get("original-rcpt-to", "")])
        detail = f"complaint ({feedback_type})" + (f" reported by {reporter}" if reporter else "")
        return Classification(InboundKind.COMPLAINT, None, tokens, addresses, detail)

    status, action = _delivery_status(message)
    if status is not None:
        kind = InboundKind.HARD_BOUNCE if status[0] == "5" else InboundKind.SOFT_BOUNCE
        addresses = _flufl_addresses(message)
        return Classification(kind, status, tokens, addresses, f"DSN {action} {status}".strip())
    if report == "delivery-status" or bounce_address == "" or _bounce_sender(message):
        # Non-standard bounce formats: Mailman's detectors know the ones found in the wild.
        try:
            temporary, permanent = all_failures(message)
        except Exception:  # noqa: BLE001
            temporary, permanent = frozenset(), frozenset()
        if permanent:
            addresses = [_text(a) for a in permanent]
            return Classification(
                InboundKind.HARD_BOUNCE, None, tokens, addresses, "bounce (non-standard format)"
            )
        if temporary:
            # flufl.bounce's "temporary" failures are delay warnings (DSN Action: delayed and
            # the plain-text "still trying" notices); Mailman does not score them either.
            addresses = [_text(a) for a in temporary]
            return Classification(
                InboundKind.DELAYED, None, tokens, addresses, "delay notice (not a bounce)"
            )

    subscriber_tokens = [t for t in outer_tokens if t.kind == "subscriber"]
    if subscriber_tokens and not _auto_submitted(message):
        return Classification(
            InboundKind.UNSUBSCRIBE, None, subscriber_tokens[:1], [], "mailto unsubscribe request"
        )
    return Classification(InboundKind.UNKNOWN, None, tokens, [], "not a bounce or a request")


def _text(address: bytes | str) -> str:
    return address.decode("ascii", "replace") if isinstance(address, bytes) else address


def _flufl_addresses(message: email.message.Message) -> list[str]:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001
        return []
    return [_text(a) for a in (*permanent, *temporary)]


def _bounce_sender(message: email.message.Message) -> bool:
    """Mail from a mailer daemon (null return path or postmaster) may be a bounce."""
    sender = " ".join(_header(message, "From") + _header(message, "Return-Path")).lower()
    return any(word in sender for word in ("mailer-daemon", "postmaster", "<>"))


def _auto_submitted(message: email.message.Message) -> bool:
    """Auto-replies (RFC 3834) to the unsubscribe address are not requests from a person."""
    values = [v.strip().lower() for v in _header(message, "Auto-Submitted")]
    return any(v and v != "no" for v in values)
