"""Field rules for request bodies: each checks one value and refuses with a sentence from the
catalogs (a ``Message`` or a ``translatable`` text), so the web layer can say it in the reader's
language. ``validate`` runs a model (``requests``) over a body and turns pydantic's errors into
``InvalidInput``: field name -> sentence, the first per field, every bad field at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError

from ..config import ENCODED_WORD_PATTERN, LANGUAGES, MAX_ROW_ID
from .recurrence import WEEKDAYS
from .wording import Message, translatable

MAX_TITLE_LENGTH = 300  # titles and subjects become mail headers
MAX_SUBJECT_LENGTH = 300
MAX_DATELINE_LENGTH = 120
MAX_URL_LENGTH = 2000
MAX_CRON_LENGTH = 120
MAX_TIMEZONE_LENGTH = 64
# A send time this far in the past is still "now" (clocks of client and server differ a little).
SEND_AT_TOLERANCE = timedelta(minutes=5)

# Titles and subjects become mail headers: RFC 2047 encoded-word syntax in them is refused.
ENCODED_WORD = re.compile(ENCODED_WORD_PATTERN)
ENCODED_WORD_REFUSED = translatable("Encoded-word syntax (=?...?=) is not allowed.")
REQUIRED = translatable("Required.")
LANGUAGE_REQUIRED = Message("Required: one of %(choices)s.", choices=", ".join(LANGUAGES))


class InvalidInput(ValueError):
    """Input that cannot be stored; ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = dict(fields)


def refuse(message: str) -> PydanticCustomError:
    """A field error carrying its catalog sentence (``validate`` reads it back)."""
    return PydanticCustomError("refused", "{message}", {"message": message})


# ---------------------------------------------------------------------------------------------
# Field rules


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text_rule(max_length: int, *, required: bool = False, single_line: bool = True) -> Callable:
    """Text, stripped; one line (no control characters, no encoded words) unless told."""

    def check(value: object) -> str | None:
        if _blank(value):
            if required:
                raise refuse(REQUIRED)
            return None
        if not isinstance(value, str):
            raise refuse(translatable("Must be text."))
        value = value.strip()
        if len(value) > max_length:
            raise refuse(Message("At most %(count)d characters.", count=max_length))
        if single_line and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise refuse(translatable("Line breaks and control characters are not allowed."))
        if "\x00" in value:
            raise refuse(translatable("Control characters are not allowed."))
        if single_line and ENCODED_WORD.search(value):
            # Mail readers would decode it (and some Pythons fold its line breaks out raw).
            raise refuse(ENCODED_WORD_REFUSED)
        return value

    return check


def subject_rule(value: object) -> str | None:
    """A mail subject: one line, inner whitespace collapsed."""
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise refuse(translatable("Must be text."))
    if any(ord(c) < 32 for c in value.strip()):
        raise refuse(translatable("Line breaks and control characters are not allowed."))
    value = " ".join(value.split())
    if len(value) > MAX_SUBJECT_LENGTH:
        raise refuse(Message("At most %(count)d characters.", count=MAX_SUBJECT_LENGTH))
    if ENCODED_WORD.search(value):
        raise refuse(ENCODED_WORD_REFUSED)
    return value


def url_rule(value: object) -> str | None:
    value = text_rule(MAX_URL_LENGTH)(value)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        raise refuse(translatable("Must be an http or https URL.")) from None
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise refuse(translatable("Must be an http or https URL."))
    return value


def language_rule(value: object) -> str:
    if value is None or value == "":
        raise refuse(LANGUAGE_REQUIRED)
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        raise refuse(Message("Choose one of: %(choices)s.", choices=", ".join(LANGUAGES)))
    return value.strip().lower()


def parse_datetime(value: object) -> datetime:
    """ISO 8601 text to naive UTC (a time without zone is taken as UTC); ValueError if not."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value.strip()) <= 64:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError("not a date-time")
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
            raise ValueError("out of range") from None
    if not 1970 <= parsed.year <= 9999:
        raise ValueError("out of range")
    return parsed


def datetime_rule(message: str, *, required: bool = False) -> Callable:
    """An ISO 8601 date-time (or a datetime from the console), as naive UTC; blank is absent."""

    def check(value: object) -> datetime | None:
        if value is None or value == "":
            if required:
                raise refuse(REQUIRED)
            return None
        try:
            return parse_datetime(value)
        except (ValueError, TypeError):
            raise refuse(message) from None

    return check


def translation_of_rule(value: object) -> int | None:
    if value is None or value == "":
        return None
    # Past the database's integer range the query itself would fail (OverflowError on SQLite).
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
        raise refuse(translatable("Must be the id of another release."))
    return value


def timezone_rule(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TIMEZONE_LENGTH:
        raise refuse(translatable("A time zone name such as Europe/Brussels."))
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise refuse(
            translatable("Unknown time zone; use a name such as Europe/Brussels.")
        ) from None
    return value


def cron_rule(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise refuse(translatable("A cron expression such as '0 8 * * mon'."))
    cron = " ".join(value.split())
    if len(cron) > MAX_CRON_LENGTH:
        raise refuse(translatable("At most 120 characters."))
    return cron


def every_rule(value: object) -> str:
    if value not in ("day", "week"):
        raise refuse(translatable("One of: day, week (or give a cron expression)."))
    return str(value)


def at_rule(value: object) -> str:
    """HH:MM, 00:00 to 23:59."""
    if (
        isinstance(value, str)
        and len(value) == 5
        and value[2] == ":"
        and value.isascii()
        and value[:2].isdigit()
        and value[3:].isdigit()
        and int(value[:2]) < 24
        and int(value[3:]) < 60
    ):
        return value
    raise refuse(translatable("A time as HH:MM."))


def weekday_rule(value: object) -> str:
    if not isinstance(value, str) or value.lower()[:3] not in WEEKDAYS:
        raise refuse(Message("One of: %(choices)s.", choices=", ".join(WEEKDAYS)))
    return value.lower()[:3]


def rule(
    check: Callable,
    schema: Any,
    *,
    nullable: bool = False,
    max_length: int | None = None,
    **field: Any,
) -> Any:
    """A field that ``check`` checks (and tidies); ``schema``, ``max_length`` and ``field``
    describe it for the JSON schema (pydantic's own checks of them then pass on the tidied
    value). ``nullable``: null is accepted as "absent"."""
    if max_length is not None:
        schema = Annotated[schema, Field(max_length=max_length)]
    if nullable:
        schema = schema | None
    return Annotated[schema, BeforeValidator(check), Field(**field)]


Language = rule(language_rule, Literal[LANGUAGES])
OptionalLanguage = rule(language_rule, Literal[LANGUAGES], nullable=True)
Url = rule(
    url_rule, str, nullable=True, json_schema_extra={"format": "uri"}, max_length=MAX_URL_LENGTH
)
Subject = rule(
    subject_rule, str, nullable=True, max_length=MAX_SUBJECT_LENGTH,
    description="Default: the date and the top headline.",
)  # fmt: skip
ISO_DATETIME = translatable("Must be an ISO 8601 date-time, e.g. 2025-03-01T09:00Z.")


# ---------------------------------------------------------------------------------------------
# Validation

M = TypeVar("M", bound=BaseModel)
MISSING = {"language": LANGUAGE_REQUIRED}


def _message(error: Mapping[str, Any], name: str) -> str:
    kind = error["type"]
    if kind == "refused":
        return error["ctx"]["message"]
    if kind == "missing":
        return MISSING.get(name, REQUIRED)
    if kind == "extra_forbidden":
        return translatable("Unknown field.")
    if kind.startswith("string_type"):
        return translatable("Must be text.")
    return str(error["msg"])  # not reached by the models above: every field has its rule


def validate(model: type[M], data: Mapping[str, Any], **context: Any) -> M:
    """``data`` as ``model``; ``InvalidInput`` names every bad field at once."""
    try:
        return model.model_validate(dict(data), context=context)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            fields.setdefault(name, _message(error, name))
        raise InvalidInput(fields) from None


def given(request: BaseModel) -> dict[str, Any]:
    """The fields the caller sent (a partial change names only what it changes)."""
    return {name: getattr(request, name) for name in request.model_fields_set}
