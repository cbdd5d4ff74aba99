"""Request bodies of the API and the console, as pydantic models: one place that says which
fields each request takes and what each may hold. The domain validates with them
(``field_rules.validate``); ``web.openapi`` writes the document's request schemas from them
(``model_json_schema``). Models only check what they are given; the domain functions turn them
into rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..config import (
    DEFAULT_TIMEZONE,
    LANGUAGES,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    PASSWORD_MAX_LENGTH,
    RELEASE_MAX_BODY_LENGTH,
    RELEASE_MAX_SUMMARY_LENGTH,
)
from .field_rules import (
    ISO_DATETIME,
    MAX_CRON_LENGTH,
    MAX_DATELINE_LENGTH,
    MAX_TIMEZONE_LENGTH,
    MAX_TITLE_LENGTH,
    SEND_AT_TOLERANCE,
    Language,
    OptionalLanguage,
    Subject,
    Url,
    at_rule,
    cron_rule,
    datetime_rule,
    every_rule,
    refuse,
    rule,
    text_rule,
    timezone_rule,
    translation_of_rule,
    weekday_rule,
)
from .recurrence import WEEKDAYS
from .wording import translatable

# ---------------------------------------------------------------------------------------------
# Models


class Request(BaseModel):
    """A request body: unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ReleaseRequest(Request):
    """A new release: ``{title, language, ...}``."""

    title: rule(text_rule(MAX_TITLE_LENGTH, required=True), str, max_length=MAX_TITLE_LENGTH)
    dateline: rule(
        text_rule(MAX_DATELINE_LENGTH), str, nullable=True, max_length=MAX_DATELINE_LENGTH,
        examples=["Bruxelles"],
    ) = None  # fmt: skip
    summary: rule(
        text_rule(RELEASE_MAX_SUMMARY_LENGTH, single_line=False), str, nullable=True,
        max_length=RELEASE_MAX_SUMMARY_LENGTH, description="Plain text (tags are removed).",
    ) = None  # fmt: skip
    body: rule(
        text_rule(RELEASE_MAX_BODY_LENGTH, single_line=False), str, nullable=True,
        max_length=RELEASE_MAX_BODY_LENGTH, description="HTML, sanitised (nh3) when stored.",
    ) = None  # fmt: skip
    url: Url = None
    image_url: Url = None
    video_url: Url = None
    language: Language
    published_at: rule(
        datetime_rule(ISO_DATETIME),
        datetime,
        nullable=True,
        description="ISO 8601; absent means now.",
    ) = None
    translation_of: rule(
        translation_of_rule, int, nullable=True,
        description="Id of the release this one translates (its public page links to it, "
        "with hreflang alternates).",
    ) = None  # fmt: skip


class ReleaseChange(ReleaseRequest):
    """Some fields of a release; a given field is checked as when creating, and may not be
    emptied where a release needs it (title, language, published_at)."""

    title: rule(
        text_rule(MAX_TITLE_LENGTH, required=True), str, nullable=True, max_length=MAX_TITLE_LENGTH
    ) = None
    language: OptionalLanguage = None
    published_at: rule(datetime_rule(ISO_DATETIME, required=True), datetime, nullable=True) = None


RELEASE_FIELDS = tuple(ReleaseRequest.model_fields)


class DigestRequest(Request):
    """A one-off digest: ``{language, send_at?, subject?}``."""

    language: Language
    send_at: rule(
        datetime_rule(
            translatable("Must be an ISO 8601 date-time, e.g. 2025-03-01T09:00:00+01:00.")
        ),
        datetime,
        nullable=True,
        description="ISO 8601 (a time without zone is UTC); absent means now.",
    ) = None
    subject: Subject = None

    @field_validator("send_at")
    @classmethod
    def _not_in_the_past(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is None or now is None:
            return value
        if value < now - SEND_AT_TOLERANCE:
            raise refuse(translatable("Must not be in the past."))
        return max(value, now)  # slightly in the past (clock skew) means now


class ScheduleChange(Request):
    """A recurring schedule's fields: ``cron``, or ``every`` + ``at`` (+ ``weekday``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": "Give `cron`, or `every` + `at` (+ `weekday` for weekly)."
        },
    )

    language: OptionalLanguage = None
    cron: rule(
        cron_rule, str, nullable=True, max_length=MAX_CRON_LENGTH, examples=["0 8 * * mon"],
        description="Crontab syntax: 5 fields (minute hour day month weekday), or 6 with seconds"
        " first; weekdays as names or crontab's numbers (0 and 7 are Sunday).",
    ) = None  # fmt: skip
    every: rule(every_rule, Literal["day", "week"], nullable=True) = None
    at: rule(at_rule, str, nullable=True, examples=["08:00"]) = None
    weekday: rule(weekday_rule, Literal[WEEKDAYS], nullable=True) = None
    timezone: rule(timezone_rule, str, max_length=MAX_TIMEZONE_LENGTH) = DEFAULT_TIMEZONE
    subject: Subject = None


class ScheduleRequest(ScheduleChange):
    """A new recurring schedule (its language is required)."""

    language: Language


class OpenRequest(BaseModel):
    """A public request body: fields it does not know are ignored (e.g. the honeypot)."""

    model_config = ConfigDict(hide_input_in_errors=True)


Email = Annotated[str, Field(max_length=MAX_EMAIL_LENGTH, json_schema_extra={"format": "email"})]
Password = Annotated[
    str, Field(max_length=PASSWORD_MAX_LENGTH, json_schema_extra={"format": "password"})
]


class SubscriptionRequest(OpenRequest):
    email: Email
    language: Literal[LANGUAGES] | None = None
    name: Annotated[str, Field(max_length=MAX_NAME_LENGTH)] | None = None


class RegistrationRequest(OpenRequest):
    email: Email
    password: Password
    language: Literal[LANGUAGES] | None = None
    subscribe: bool = False


class EmailRequest(OpenRequest):
    """A body naming one address (password reset, a digest's test send)."""

    email: Email


class PasswordResetConfirmation(OpenRequest):
    email: Email
    code: str
    password: Password
