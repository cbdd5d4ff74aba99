"""A message checked against the bulk-sender rules (Gmail's and Yahoo's of 2024, RFC 8058).

Each rule passes, fails or is skipped (does not apply, or cannot be checked from here). DKIM
is verified with dkimpy against the configured key's own record, as a receiver would against
DNS: a message signed with another key, or changed after signing, fails.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32
from email.utils import parseaddr, parsedate_to_datetime

import dkim

from ..config import STREAM_NEWSLETTER, STREAM_TRANSACTIONAL
from ..mail.dkim import DkimKeyError, signer_from_settings

PASS, FAIL, SKIP = "pass", "fail", "skip"

# Answers a one-click POST to the URL: (HTTP status, or None when it could not be tried; why).
OneClickPoster = Callable[[str], tuple[int | None, str]]


@dataclass(frozen=True)
class RuleResult:
    rule: str
    outcome: str  # pass, fail, skip
    detail: str = ""


def _stream(message: Message) -> str:
    """Newsletter mail carries a newsletter Feedback-ID, List-Id or List-Unsubscribe."""
    feedback = str(message.get("Feedback-ID") or "").split(":")
    if len(feedback) >= 2 and feedback[1] in (STREAM_NEWSLETTER, STREAM_TRANSACTIONAL):
        return feedback[1]
    if message.get("List-Id") or message.get("List-Unsubscribe"):
        return STREAM_NEWSLETTER
    return STREAM_TRANSACTIONAL


def _signature_tags(message: Message) -> dict[str, str]:
    value = message.get("DKIM-Signature")
    if value is None:
        return {}
    tags: dict[str, str] = {}
    for part in re.sub(r"\s+", "", str(value)).split(";"):
        name, _, tag_value = part.partition("=")
        if name:
            tags[name] = tag_value
    return tags


def _one_click_url(message: Message) -> str | None:
    for url in re.findall(r"<([^>]+)>", str(message.get("List-Unsubscribe") or "")):
        if url.startswith(("https://", "http://")):
            return url
    return None


def _check_dkim(data: bytes, settings: Mapping[str, object]) -> RuleResult:
    rule = "DKIM signature verifies against the configured key"
    if b"dkim-signature:" not in data.lower():
        return RuleResult(rule, FAIL, "not signed")
    try:
        signer = signer_from_settings(settings)
    except DkimKeyError as exc:
        return RuleResult(rule, FAIL, str(exc))
    if signer is None:
        return RuleResult(rule, FAIL, "DKIM is not configured (NEWSLETTER_DKIM_*)")
    name = f"{signer.selector}._domainkey.{signer.domain}.".encode()
    record = signer.key.txt_record().encode()

    def dnsfunc(queried: bytes, timeout: int = 5) -> bytes | None:
        return record if queried.lower() == name.lower() else None

    try:
        verified = dkim.verify(data, dnsfunc=dnsfunc)
    except Exception as exc:  # noqa: BLE001 - dkimpy raises a zoo on malformed input
        return RuleResult(rule, FAIL, f"cannot verify: {exc}")
    if not verified:
        return RuleResult(rule, FAIL, f"does not verify with {name.decode().rstrip('.')}")
    return RuleResult(rule, PASS, f"{signer.key.algorithm}, s={signer.selector}")


def audit_message(
    data: bytes,
    settings: Mapping[str, object],
    one_click: OneClickPoster | None = None,
) -> list[RuleResult]:
    """Every rule's outcome for the message ``data`` (as sent: headers, CRLF or LF)."""
    message = email.message_from_bytes(data, policy=compat32)
    stream = _stream(message)
    newsletter = stream == STREAM_NEWSLETTER
    results = [_check_dkim(data, settings)]

    tags = _signature_tags(message)
    from_domain = parseaddr(str(message.get("From") or ""))[1].rpartition("@")[2].lower()
    signing_domain = tags.get("d", "").lower()
    aligned = bool(signing_domain) and (
        from_domain == signing_domain or from_domain.endswith("." + signing_domain)
    )
    results.append(
        RuleResult(
            "From domain aligned with DKIM d=",
            PASS if aligned else FAIL,
            f"From {from_domain or '(none)'}, d={signing_domain or '(none)'}",
        )
    )
    signed = tags.get("h", "").lower().split(":")

    url = _one_click_url(message)
    post = str(message.get("List-Unsubscribe-Post") or "").strip()
    if not newsletter:
        results.append(RuleResult("List-Unsubscribe + List-Unsubscribe-Post", SKIP, "account mail"))
    elif url is None:
        results.append(
            RuleResult("List-Unsubscribe + List-Unsubscribe-Post", FAIL, "no http(s) URL")
        )
    elif post != "List-Unsubscribe=One-Click":
        results.append(
            RuleResult("List-Unsubscribe + List-Unsubscribe-Post", FAIL, "no one-click POST")
        )
    elif tags and not {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed):
        results.append(
            RuleResult("List-Unsubscribe + List-Unsubscribe-Post", FAIL, "not covered by DKIM h=")
        )
    else:
        results.append(RuleResult("List-Unsubscribe + List-Unsubscribe-Post", PASS, url))

    list_id = message.get("List-Id")
    if newsletter:
        results.append(RuleResult("List-Id", PASS if list_id else FAIL, str(list_id or "")))
    else:
        results.append(RuleResult("List-Id", SKIP, "account mail"))

    auto = str(message.get("Auto-Submitted") or "")
    if newsletter:
        results.append(RuleResult("Auto-Submitted on account mail", SKIP, "newsletter mail"))
    else:
        results.append(
            RuleResult(
                "Auto-Submitted on account mail",
                PASS if auto.strip().lower().startswith("auto-") else FAIL,
                auto or "missing",
            )
        )

    feedback = message.get("Feedback-ID")
    results.append(RuleResult("Feedback-ID", PASS if feedback else FAIL, str(feedback or "")))
    message_id = str(message.get("Message-ID") or "")
    results.append(
        RuleResult(
            "Message-ID",
            PASS if re.fullmatch(r"\s*<[^<>@\s]+@[^<>@\s]+>\s*", message_id) else FAIL,
            message_id or "missing",
        )
    )
    date = str(message.get("Date") or "")
    try:
        date_ok = bool(date) and parsedate_to_datetime(date) is not None
    except (TypeError, ValueError):
        date_ok = False
    results.append(RuleResult("Date", PASS if date_ok else FAIL, date or "missing"))

    types = [part.get_content_type() for part in message.walk()]
    alternative = message.get_content_type() == "multipart/alternative"
    both = "text/plain" in types and "text/html" in types
    results.append(
        RuleResult(
            "multipart/alternative with text and HTML",
            PASS if alternative and both else FAIL,
            ", ".join(types),
        )
    )

    rule = "one-click URL answers a cookieless POST with 200"
    if not newsletter:
        results.append(RuleResult(rule, SKIP, "account mail"))
    elif url is None:
        results.append(RuleResult(rule, FAIL, "no URL"))
    elif one_click is None:
        results.append(RuleResult(rule, SKIP, "not tried"))
    else:
        status, detail = one_click(url)
        if status is None:
            results.append(RuleResult(rule, SKIP, detail))
        else:
            results.append(RuleResult(rule, PASS if status == 200 else FAIL, detail))
    return results


def audit_failed(results: list[RuleResult]) -> bool:
    return any(result.outcome == FAIL for result in results)


def audit_table(results: list[RuleResult]) -> str:
    """A plain-text table: rule, outcome, detail."""
    rows = [("rule", "result", "detail")] + [
        (result.rule, result.outcome.upper(), result.detail) for result in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}" for row in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  ------")
    return "\n".join(line.rstrip() for line in lines)
