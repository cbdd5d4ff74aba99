"""Importing subscribers from CSV, planned row by row.

No request and no mail here: ``plan_subscriber_import`` plans each row and ``delivery.imports``
applies the plan, which also queues the double opt-in emails.
"""

from __future__ import annotations

import csv
import enum
import io
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ..config import (
    CSV_IMPORT_MAX_ROWS,
    LANGUAGES,
    MAX_NAME_LENGTH,
    MAX_PAGE_URL_LENGTH,
)
from ..extensions import db
from ..models import Subscriber, SubscriberStatus, utcnow
from .addresses import InvalidAddress, normalise_address
from .subscriptions import InvalidField, clean_language, clean_text
from .suppressions import SuppressionKeys, suppressed_keys
from .wording import translatable

# --- CSV import ---------------------------------------------------------------------------


class ImportFileError(ValueError):
    """The file as a whole cannot be read; ``reason`` names why, ``details`` fill the message.

    Reasons: binary, not_utf8, empty, not_csv, no_email_column, too_many_rows, no_rows.
    """

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class RowOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"  # new, with recorded consent
    PENDING = "pending"  # new, no recorded consent: gets the double opt-in email
    UNCHANGED = "unchanged"  # already subscribed or waiting: left as it is
    REFUSED = "refused"  # left or bounced: an import never brings them back
    INVALID = "invalid"  # malformed: reported, nothing written

    @property
    def writes(self) -> bool:
        return self in (RowOutcome.CONFIRMED, RowOutcome.PENDING)


@dataclass
class ImportRow:
    """One line of the file and what importing it does.

    ``reason`` says why, for the report: consent_recorded, double_opt_in, already_listed,
    left, bounced, too_many_fields, email, field, duplicate; ``details`` fill the message.
    """

    line: int
    email: str
    outcome: RowOutcome
    reason: str = ""
    details: dict[str, object] = field(default_factory=dict)
    # Cleaned values, set for rows that will be written.
    email_key: str = ""
    name: str | None = None
    language: str = ""
    consent_at: datetime | None = None
    consent_ip: str | None = None
    consent_page: str | None = None


@dataclass
class ImportPlan:
    rows: list[ImportRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def count(self, outcome: RowOutcome) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {outcome.value: self.count(outcome) for outcome in RowOutcome}

    @property
    def to_write(self) -> list[ImportRow]:
        return [row for row in self.rows if row.outcome.writes]


EMAIL_HEADERS = {"email", "e-mail", "email address", "adresse", "courriel"}
KNOWN_COLUMNS = {"name", "language", "consent_at", "consent_ip", "consent_page"}


def decode_csv(data: bytes) -> str:
    """The file's text: UTF-8 (with or without the BOM spreadsheets add)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError("not_utf8")  # UTF-16, what some spreadsheets call "Unicode"
    if b"\0" in data:
        raise ImportFileError("binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError("not_utf8") from None


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    # Spreadsheets in French locales separate with ";": let the header line decide.
    header = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def parse_consent_time(value: str) -> datetime:
    """An ISO 8601 date or date-time, as naive UTC; a zone-less time is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField(
            "consent_at", "consent_at must be a date like 2024-05-31 or 2024-05-31T14:00:00Z."
        ) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
            raise InvalidField("consent_at", "consent_at is not a possible date.") from None
    if parsed > utcnow() + timedelta(minutes=5):
        raise InvalidField("consent_at", "consent_at is in the future.")
    return parsed


def _clean_ip(value: str) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidField("consent_ip", "consent_ip is not an IP address.") from None


def _clean_page(value: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_PAGE_URL_LENGTH or any(ord(ch) < 32 for ch in value):
        raise InvalidField("consent_page", "consent_page is too long or holds line breaks.")
    return value


def _existing_by_key(keys: list[str]) -> dict[str, Subscriber]:
    found: dict[str, Subscriber] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for subscriber in db.session.scalars(
            select(Subscriber).where(Subscriber.email_key.in_(chunk))
        ):
            found[subscriber.email_key] = subscriber
    return found


def plan_subscriber_import(
    text: str, default_language: str, suppression: SuppressionKeys | None = None
) -> ImportPlan:
    """Read the CSV and decide, row by row, what importing it would do. Writes nothing.

    Columns (header row required, any order): ``email`` and optionally ``name``,
    ``language``, ``consent_at`` (when the person agreed, ISO 8601), ``consent_ip``,
    ``consent_page``. Rows without ``consent_at`` start as pending and get the double opt-in.
    """
    if default_language not in LANGUAGES:
        raise InvalidField(
            "language", translatable("Choose one of: %(choices)s."), choices=", ".join(LANGUAGES)
        )
    if not text.strip():
        raise ImportFileError("empty")
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    try:
        header = [column.strip().casefold() for column in next(reader)]
    except csv.Error as exc:
        raise ImportFileError("not_csv", line=1, detail=str(exc)) from None
    email_columns = [index for index, column in enumerate(header) if column in EMAIL_HEADERS]
    if not email_columns:
        raise ImportFileError("no_email_column")
    email_index = email_columns[0]
    columns = {column: index for index, column in enumerate(header) if column in KNOWN_COLUMNS}
    plan = ImportPlan(
        ignored_columns=[
            column
            for index, column in enumerate(header)
            if index != email_index and column not in KNOWN_COLUMNS and column
        ]
    )

    raw_rows: list[tuple[int, list[str]]] = []
    try:
        for values in reader:
            if not any(value.strip() for value in values):
                continue  # blank lines are not rows
            if len(raw_rows) >= CSV_IMPORT_MAX_ROWS:
                raise ImportFileError("too_many_rows", max=CSV_IMPORT_MAX_ROWS)
            raw_rows.append((reader.line_num, values))
    except csv.Error as exc:
        raise ImportFileError("not_csv", line=reader.line_num, detail=str(exc)) from None
    if not raw_rows:
        raise ImportFileError("no_rows")

    first_line_of: dict[str, int] = {}
    for line, values in raw_rows:
        plan.rows.append(
            _plan_row(line, values, header, email_index, columns, default_language, first_line_of)
        )

    existing = _existing_by_key([row.email_key for row in plan.rows if row.outcome.writes])
    for row in plan.rows:
        subscriber = existing.get(row.email_key) if row.outcome.writes else None
        if subscriber is None:
            continue
        if subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED):
            # Withdrawn consent stands: only the person can subscribe again.
            row.outcome = RowOutcome.REFUSED
            row.reason = "left" if subscriber.status == SubscriberStatus.UNSUBSCRIBED else "bounced"
        else:
            row.outcome = RowOutcome.UNCHANGED
            row.reason = "already_listed"
            row.details = {"status": subscriber.status}
    if suppression is not None:
        # Hard-bounced or complained (even if the subscriber row was erased since): refused.
        blocked = suppressed_keys(suppression, [r.email_key for r in plan.rows if r.outcome.writes])
        for row in plan.rows:
            if row.outcome.writes and row.email_key in blocked:
                row.outcome, row.reason = RowOutcome.REFUSED, "suppressed"
    return plan


def _plan_row(
    line: int,
    values: list[str],
    header: list[str],
    email_index: int,
    columns: dict[str, int],
    default_language: str,
    first_line_of: dict[str, int],
) -> ImportRow:
    def value(column: str) -> str:
        index = columns.get(column)
        if index is None or index >= len(values):
            return ""
        return values[index].strip()

    raw_email = values[email_index].strip() if email_index < len(values) else ""
    row = ImportRow(line=line, email=raw_email[:320], outcome=RowOutcome.INVALID)
    if len(values) > len(header):
        row.reason = "too_many_fields"
        row.details = {"count": len(values), "expected": len(header)}
        return row
    try:
        address = normalise_address(raw_email)
        row.name = clean_text(value("name"), "name", MAX_NAME_LENGTH)
        row.language = clean_language(value("language").lower() or None, default_language)
        consent = value("consent_at")
        row.consent_at = parse_consent_time(consent) if consent else None
        row.consent_ip = _clean_ip(value("consent_ip"))
        row.consent_page = _clean_page(value("consent_page"))
    except InvalidAddress as exc:
        row.reason, row.details = "email", {"detail": str(exc)}
        return row
    except InvalidField as exc:
        row.reason, row.details = "field", {"field": exc.field, "detail": str(exc)}
        return row
    row.email, row.email_key = address.email, address.key
    if address.key in first_line_of:
        row.reason, row.details = "duplicate", {"line": first_line_of[address.key]}
        return row
    first_line_of[address.key] = line
    if row.consent_at is not None:
        row.outcome, row.reason = RowOutcome.CONFIRMED, "consent_recorded"
    else:
        row.outcome, row.reason = RowOutcome.PENDING, "double_opt_in"
    return row


def new_subscriber_from_row(row: ImportRow) -> Subscriber:
    """The subscriber an importable row creates (the caller adds it and commits)."""
    if not row.outcome.writes:
        raise ValueError(f"row {row.line} is not importable")
    now = utcnow()
    confirmed = row.outcome == RowOutcome.CONFIRMED
    return Subscriber(
        email=row.email,
        email_key=row.email_key,
        name=row.name,
        language=row.language,
        status=SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING,
        created_at=now,
        # With recorded consent, the record is the one given; without, consent is asked now.
        consent_at=row.consent_at or now,
        consent_ip=row.consent_ip,
        consent_page=row.consent_page,
        consent_source="import",
        confirmed_at=row.consent_at if confirmed else None,
        hard_bounces=0,
    )
