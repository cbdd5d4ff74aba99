"""What the staff console reads and plans: subscriber search, dashboard figures, CSV import.

No request and no mail here: the import is planned row by row (``plan_subscriber_import``)
and applied by ``delivery.imports``, which also queues the double opt-in emails.
"""

from __future__ import annotations

import csv
import enum
import io
import ipaddress
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, func, select

from ..config import (
    CSV_IMPORT_MAX_ROWS,
    LANGUAGES,
    MAX_NAME_LENGTH,
    MAX_PAGE_URL_LENGTH,
)
from ..extensions import db
from ..models import Digest, Subscriber, SubscriberStatus, utcnow
from .addresses import InvalidAddress, normalise_address
from .subscriptions import InvalidField, clean_language, clean_text
from .suppressions import SuppressionKeys, suppressed_keys
from .wording import translatable

STATUSES = tuple(status.value for status in SubscriberStatus)


# --- Subscriber search -------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberFilter:
    """What the staff member typed or picked; empty means "any"."""

    query: str = ""
    status: str = ""
    language: str = ""

    def __post_init__(self) -> None:
        if self.status and self.status not in STATUSES:
            raise InvalidField(
                "status", translatable("Choose one of: %(choices)s."), choices=", ".join(STATUSES)
            )
        if self.language and self.language not in LANGUAGES:
            raise InvalidField(
                "language",
                translatable("Choose one of: %(choices)s."),
                choices=", ".join(LANGUAGES),
            )
        if len(self.query) > 320:
            raise InvalidField("q", translatable("At most %(count)d characters."), count=320)
        # No address holds one, and PostgreSQL refuses NUL in a query parameter outright.
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.query):
            raise InvalidField("q", "Control characters are not allowed.")

    def statement(self) -> Select[tuple[Subscriber]]:
        """Subscribers matching the filter, newest first."""
        statement = select(Subscriber)
        if self.query.strip():
            # The key is case-folded; LIKE wildcards typed by staff are matched literally.
            needle = self.query.strip().casefold()
            statement = statement.where(Subscriber.email_key.contains(needle, autoescape=True))
        if self.status:
            statement = statement.where(Subscriber.status == self.status)
        if self.language:
            statement = statement.where(Subscriber.language == self.language)
        return statement.order_by(Subscriber.id.desc())


@dataclass(frozen=True)
class Page:
    items: Sequence[Subscriber]
    total: int
    number: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def subscriber_page(subscriber_filter: SubscriberFilter, number: int, size: int) -> Page:
    """One page of the filtered subscribers; a page past the end is simply empty."""
    number = max(1, number)
    statement = subscriber_filter.statement()
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    items = db.session.scalars(statement.limit(size).offset((number - 1) * size)).all()
    return Page(items=items, total=total, number=number, size=size)


# --- CSV export ---------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "email",
    "name",
    "language",
    "status",
    "created_at",
    "consent_at",
    "consent_ip",
    "consent_page",
    "consent_source",
    "confirmed_at",
    "confirmed_ip",
    "unsubscribed_at",
    "unsubscribe_method",
    "bounced_at",
)
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A cell as text; text a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def export_lines(subscriber_filter: SubscriberFilter, batch_size: int = 1000) -> Iterator[str]:
    """The CSV file, line by line, reading the table in batches so any size fits in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Sequence[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(EXPORT_COLUMNS)
    statement = subscriber_filter.statement().execution_options(yield_per=batch_size)
    for subscriber in db.session.scalars(statement):
        yield line([spreadsheet_safe(getattr(subscriber, column)) for column in EXPORT_COLUMNS])


# --- Dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DayMovement:
    day: date
    confirmations: int
    departures: int


def status_counts() -> dict[str, int]:
    """Subscribers per status, every status present (zero when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = db.session.execute(
        select(Subscriber.status, func.count(Subscriber.id)).group_by(Subscriber.status)
    )
    for status, count in rows:
        counts[status] = count
    return counts


def _per_day(column, since: datetime) -> dict[date, int]:
    # date() exists in SQLite (a string) and PostgreSQL (a date): normalise through isoformat.
    day = func.date(column)
    rows = db.session.execute(select(day, func.count()).where(column >= since).group_by(day)).all()
    return {date.fromisoformat(str(value)[:10]): count for value, count in rows if value}


def daily_movements(days: int, today: date | None = None) -> list[DayMovement]:
    """Confirmations and departures (unsubscribed or bounced) per UTC day, oldest first.

    Counted from each subscriber's latest state: someone who left and came back counts once,
    on the day of their latest confirmation.
    """
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day)
    confirmed = _per_day(Subscriber.confirmed_at, since)
    unsubscribed = _per_day(Subscriber.unsubscribed_at, since)
    bounced = _per_day(Subscriber.bounced_at, since)
    movements = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        departures = unsubscribed.get(day, 0) + bounced.get(day, 0)
        movements.append(DayMovement(day, confirmed.get(day, 0), departures))
    return movements


def latest_digests(limit: int = 10) -> Sequence[Digest]:
    return db.session.scalars(
        select(Digest).order_by(Digest.send_at.desc(), Digest.id.desc()).limit(limit)
    ).all()


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
