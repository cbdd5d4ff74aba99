"""The audit log: an append-only record of every change and export made by staff.

The domain writes entries (``record``) in the transaction of the change itself, so an entry
exists exactly when the change does. Nothing here updates or deletes an entry.

Because entries are never rewritten, an entry must never hold a reader's address: erasing a
subscriber (GDPR art. 17) could not take it out again. Details name a subscriber by id, or an
address by ``address_hash`` (keyed, so recognisable by whoever holds the key, not readable).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from ..extensions import db
from ..models import AuditEntry, User


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member, through a session (``token_id`` None) or an API token."""

    user_id: int | None
    label: str | None
    token_id: int | None = None
    ip: str | None = None

    @classmethod
    def of(cls, user: User | None, token_id: int | None = None, ip: str | None = None) -> Actor:
        if user is None:
            return cls(None, None, token_id, ip)
        return cls(user.id, user.email, token_id, ip)


SYSTEM = Actor(None, "system")


def address_hash(email_key: str, key: str) -> str:
    """A keyed hash of an address for audit details: recognisable later, not readable."""
    return hmac.new(key.encode(), email_key.encode(), hashlib.sha256).hexdigest()


def record(
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_ids: Iterable[object] | object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the session; the caller's commit makes it (and the change) durable."""
    if target_ids is None:
        ids = None
    elif isinstance(target_ids, (str, int)):
        ids = str(target_ids)
    else:
        ids = ",".join(str(value) for value in target_ids)  # type: ignore[union-attr]
    entry = AuditEntry(
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_ids=ids,
        ip=actor.ip,
        details=json.dumps(details, sort_keys=True, default=str) if details else None,
    )
    db.session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""  # part of an address
    target_type: str = ""
    target_id: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> Select[tuple[AuditEntry]]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        if self.action:
            query = query.where(AuditEntry.action.startswith(self.action))
        if self.actor:
            query = query.where(AuditEntry.actor_label.contains(self.actor.casefold()))
        if self.target_type:
            query = query.where(AuditEntry.target_type == self.target_type)
        if self.target_id:
            # Whole ids only: "1" must not find "12" (the column holds "1,12,31").
            ids = AuditEntry.target_ids
            wanted = self.target_id
            query = query.where(
                (ids == wanted)
                | ids.startswith(wanted + ",")
                | ids.endswith("," + wanted)
                | ids.contains("," + wanted + ",")
            )
        if self.since is not None:
            query = query.where(AuditEntry.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEntry.at < self.until)
        return query


def entry_as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat() + "Z",
        "actor_user_id": entry.actor_user_id,
        "actor_token_id": entry.actor_token_id,
        "actor": entry.actor_label,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_ids": entry.target_ids.split(",") if entry.target_ids else [],
        "ip": entry.ip,
        "details": json.loads(entry.details) if entry.details else {},
    }


CSV_COLUMNS = (
    "id",
    "at",
    "actor",
    "actor_user_id",
    "actor_token_id",
    "action",
    "target_type",
    "target_ids",
    "ip",
    "details",
)


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv_lines(audit_filter: AuditFilter, chunk: int = 500) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for entry in db.session.scalars(audit_filter.query().execution_options(yield_per=chunk)):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [
                _csv_cell(value)
                for value in (
                    entry.id,
                    entry.at.isoformat() + "Z",
                    entry.actor_label,
                    entry.actor_user_id,
                    entry.actor_token_id,
                    entry.action,
                    entry.target_type,
                    entry.target_ids,
                    entry.ip,
                    entry.details,
                )
            ]
        )
        yield buffer.getvalue()


def export_json_lines(audit_filter: AuditFilter, chunk: int = 500) -> Iterator[str]:
    """A JSON array, streamed entry by entry."""
    yield "["
    first = True
    for entry in db.session.scalars(audit_filter.query().execution_options(yield_per=chunk)):
        yield ("" if first else ",\n") + json.dumps(entry_as_dict(entry), sort_keys=True)
        first = False
    yield "]\n"
