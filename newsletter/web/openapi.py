"""OpenAPI 3 description of ``/api/v1``, served at ``/api/openapi.json``.

Kept by hand next to the routes (``api.py``, ``api_staff.py``, the accounts routes of the
contract); a test checks that every ``/api/v1`` route of the app is described here.
"""

from __future__ import annotations

from typing import Any

from ..config import DEFAULT_TIMEZONE


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    }


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
    "422": {"$ref": "#/components/responses/Invalid"},
}
NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
CONFLICT = {"409": {"$ref": "#/components/responses/Conflict"}}
STAFF = [{"bearerToken": []}, {"staffSession": []}]
PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    },
]
LANGUAGE_QUERY = {
    "name": "language",
    "in": "query",
    "schema": {"type": "string", "enum": ["fr", "en"]},
}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _staff(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": STAFF, "responses": {**responses, **ERRORS}, **extra}


def _action(summary: str, tag: str, id_name: str, schema: str) -> dict[str, Any]:
    return _staff(
        summary,
        {"200": _json(_ref(schema), "The changed row."), **NOT_FOUND, **CONFLICT},
        tags=[tag],
        parameters=[_id(id_name)],
    )


DIGEST_STATUS = ["scheduled", "sending", "sent", "skipped", "failed"]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string", "example": "invalid"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Field name → what is wrong with it.",
                    },
                },
            }
        },
    },
    "Subscriber": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string", "nullable": True},
            "language": {"type": "string", "enum": ["fr", "en"]},
            "status": {
                "type": "string",
                "enum": ["pending", "confirmed", "unsubscribed", "bounced"],
            },
            "created_at": {"type": "string", "format": "date-time"},
            "consent_at": {"type": "string", "format": "date-time", "nullable": True},
            "consent_source": {"type": "string", "nullable": True},
            "confirmed_at": {"type": "string", "format": "date-time", "nullable": True},
            "unsubscribed_at": {"type": "string", "format": "date-time", "nullable": True},
            "bounced_at": {"type": "string", "format": "date-time", "nullable": True},
            "hard_bounces": {"type": "integer"},
        },
    },
    "ReleaseInput": {
        "type": "object",
        "required": ["title", "language"],
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "maxLength": 300},
            "dateline": {"type": "string", "maxLength": 120, "example": "Bruxelles"},
            "summary": {"type": "string", "description": "Plain text (tags are removed)."},
            "body": {"type": "string", "description": "HTML, sanitised (nh3) when stored."},
            "url": {"type": "string", "format": "uri"},
            "image_url": {"type": "string", "format": "uri"},
            "video_url": {"type": "string", "format": "uri"},
            "language": {"type": "string", "enum": ["fr", "en"]},
            "published_at": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601; absent means now.",
            },
            "translation_of": {
                "type": "integer",
                "nullable": True,
                "description": "Id of the release this one translates (its public page links "
                "to it, with hreflang alternates).",
            },
        },
    },
    "Release": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "dateline": {"type": "string", "nullable": True},
            "summary": {"type": "string"},
            "body": {"type": "string", "description": "Sanitised HTML."},
            "url": {"type": "string", "nullable": True},
            "image_url": {"type": "string", "nullable": True},
            "video_url": {"type": "string", "nullable": True},
            "language": {"type": "string"},
            "published_at": {"type": "string", "format": "date-time"},
            "source_guid": {"type": "string", "nullable": True},
            "translation_of": {"type": "integer", "nullable": True},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "DigestInput": {
        "type": "object",
        "required": ["language"],
        "additionalProperties": False,
        "properties": {
            "language": {"type": "string", "enum": ["fr", "en"]},
            "send_at": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601 (a time without zone is UTC); absent means now.",
            },
            "subject": {
                "type": "string",
                "maxLength": 300,
                "description": "Default: the date and the top headline.",
            },
        },
    },
    "Digest": {
        "type": "object",
        "required": ["id", "status", "recipients", "sent", "failed"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": DIGEST_STATUS},
            "language": {"type": "string"},
            "subject": {"type": "string", "nullable": True},
            "send_at": {"type": "string", "format": "date-time"},
            "paused": {"type": "boolean"},
            "failure_reason": {
                "type": "string",
                "nullable": True,
                "description": "With status failed: cancelled, missed, or what went wrong.",
            },
            "schedule_id": {"type": "integer", "nullable": True},
            "recipients": {"type": "integer"},
            "sent": {"type": "integer"},
            "failed": {"type": "integer"},
            "pending": {"type": "integer", "description": "Queued or being sent."},
            "cancelled": {
                "type": "integer",
                "description": "Deliveries called off: the subscriber left (or bounced) first.",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "finished_at": {"type": "string", "format": "date-time", "nullable": True},
            "releases": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "subscriber_id": {"type": "integer"},
            "email": {"type": "string", "nullable": True},
            "status": {
                "type": "string",
                "enum": ["queued", "sending", "sent", "failed", "cancelled"],
            },
            "attempts": {"type": "integer"},
            "smtp_code": {"type": "integer", "nullable": True},
            "smtp_response": {"type": "string", "nullable": True},
            "updated_at": {"type": "string", "format": "date-time", "nullable": True},
            "next_attempt_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "ScheduleInput": {
        "type": "object",
        "additionalProperties": False,
        "description": "Give `cron`, or `every` + `at` (+ `weekday` for weekly).",
        "properties": {
            "language": {"type": "string", "enum": ["fr", "en"]},
            "cron": {
                "type": "string",
                "example": "0 8 * * mon",
                "description": (
                    "Crontab syntax: 5 fields (minute hour day month weekday), or 6 with seconds"
                    " first; weekdays as names or crontab's numbers (0 and 7 are Sunday)."
                ),
            },
            "every": {"type": "string", "enum": ["day", "week"]},
            "at": {"type": "string", "example": "08:00"},
            "weekday": {
                "type": "string",
                "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            },
            "timezone": {"type": "string", "default": DEFAULT_TIMEZONE},
            "subject": {"type": "string", "maxLength": 300},
        },
    },
    "Schedule": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "language": {"type": "string"},
            "cron": {"type": "string"},
            "timezone": {"type": "string"},
            "subject": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": ["active", "paused", "cancelled"]},
            "next_run_at": {"type": "string", "format": "date-time", "nullable": True},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


PATHS: dict[str, Any] = {
    "/api/v1/subscriptions": {
        "post": {
            "summary": "Subscribe (double opt-in)",
            "tags": ["public"],
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "language": {"type": "string", "enum": ["fr", "en"]},
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            ),
            "responses": {
                "202": _json(
                    {"type": "object", "properties": {"status": {"enum": ["pending"]}}},
                    "Accepted, whatever the address's state (no enumeration).",
                ),
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "422": {"$ref": "#/components/responses/Invalid"},
                "429": _error("Too many requests."),
            },
        }
    },
    "/api/v1/account/register": {
        "post": {
            "summary": "Create a site account (a verification code is emailed)",
            "tags": ["public"],
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["email", "password"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "password": {"type": "string", "format": "password"},
                        "language": {"type": "string", "enum": ["fr", "en"]},
                        "subscribe": {"type": "boolean"},
                    },
                }
            ),
            "responses": {
                "202": _json(
                    {"type": "object", "properties": {"status": {"enum": ["pending"]}}},
                    "Accepted, whatever the address's state (no enumeration).",
                ),
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "422": {"$ref": "#/components/responses/Invalid"},
                "429": _error("Too many requests."),
            },
        }
    },
    "/api/v1/account/password-reset": {
        "post": {
            "summary": "Email a one-time code to reset a password",
            "tags": ["public"],
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["email"],
                    "properties": {"email": {"type": "string", "format": "email"}},
                }
            ),
            "responses": {
                "202": _json({"type": "object"}, "Accepted whatever the address."),
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "422": {"$ref": "#/components/responses/Invalid"},
                "429": _error("Too many requests."),
            },
        }
    },
    "/api/v1/account/password-reset/confirm": {
        "post": {
            "summary": "Set a new password with the emailed code",
            "tags": ["public"],
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["email", "code", "password"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "code": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            ),
            "responses": {
                "200": _json({"type": "object"}, "Password changed."),
                "400": _error("Wrong or expired code, or a password that breaks the policy."),
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "429": _error("Too many requests."),
            },
        }
    },
    "/api/v1/subscribers": {
        "get": _staff(
            "List subscribers",
            {"200": _json(_page_of("Subscriber"), "One page, oldest first.")},
            tags=["subscribers"],
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["pending", "confirmed", "unsubscribed", "bounced"],
                    },
                },
                LANGUAGE_QUERY,
                *PAGING,
            ],
        )
    },
    "/api/v1/releases": {
        "get": _staff(
            "List releases, newest first",
            {"200": _json(_page_of("Release"), "One page.")},
            tags=["releases"],
            parameters=[LANGUAGE_QUERY, *PAGING],
        ),
        "post": _staff(
            "Create a release (body HTML sanitised)",
            {"201": _json(_ref("Release"), "Created.")},
            tags=["releases"],
            requestBody=_body(_ref("ReleaseInput")),
        ),
    },
    "/api/v1/releases/{release_id}": {
        "get": _staff(
            "One release",
            {"200": _json(_ref("Release"), "The release."), **NOT_FOUND},
            tags=["releases"],
            parameters=[_id("release_id")],
        ),
        "patch": _staff(
            "Change some fields of a release",
            {"200": _json(_ref("Release"), "Changed."), **NOT_FOUND},
            tags=["releases"],
            parameters=[_id("release_id")],
            requestBody=_body(_ref("ReleaseInput")),
        ),
    },
    "/api/v1/digests": {
        "get": _staff(
            "List digests, latest send time first",
            {"200": _json(_page_of("Digest"), "One page.")},
            tags=["digests"],
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": DIGEST_STATUS},
                },
                LANGUAGE_QUERY,
                *PAGING,
            ],
        ),
        "post": _staff(
            "Schedule a one-off digest (now when send_at is absent)",
            {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["id", "status"],
                        "properties": {
                            "id": {"type": "integer"},
                            "status": {"type": "string", "enum": DIGEST_STATUS},
                            "send_at": {"type": "string", "format": "date-time"},
                        },
                    },
                    "Scheduled; a worker starts it at send_at.",
                )
            },
            tags=["digests"],
            requestBody=_body(_ref("DigestInput")),
        ),
    },
    "/api/v1/digests/{digest_id}": {
        "get": _staff(
            "Status and counters of a digest",
            {"200": _json(_ref("Digest"), "The digest."), **NOT_FOUND},
            tags=["digests"],
            parameters=[_id("digest_id")],
        )
    },
    "/api/v1/digests/{digest_id}/pause": {
        "post": _action("Pause (scheduled or sending)", "digests", "digest_id", "Digest")
    },
    "/api/v1/digests/{digest_id}/resume": {
        "post": _action("Resume a paused digest", "digests", "digest_id", "Digest")
    },
    "/api/v1/digests/{digest_id}/cancel": {
        "post": _action(
            "Cancel: status failed, reason cancelled; nothing more is sent",
            "digests",
            "digest_id",
            "Digest",
        )
    },
    "/api/v1/digests/{digest_id}/resend-failed": {
        "post": _staff(
            "Queue the failed deliveries of a digest again",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "requeued": {"type": "integer"},
                            "digest": _ref("Digest"),
                        },
                    },
                    "How many deliveries were queued again.",
                ),
                **NOT_FOUND,
                **CONFLICT,
            },
            tags=["digests"],
            parameters=[_id("digest_id")],
        )
    },
    "/api/v1/digests/{digest_id}/deliveries": {
        "get": _staff(
            "Who received a digest: one row per recipient with the SMTP answer",
            {"200": _json(_page_of("Delivery"), "One page."), **NOT_FOUND},
            tags=["digests"],
            parameters=[
                _id("digest_id"),
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["queued", "sending", "sent", "failed", "cancelled"],
                    },
                },
                *PAGING,
            ],
        )
    },
    "/api/v1/digests/{digest_id}/preview": {
        "get": _staff(
            "The digest as a subscriber will see it",
            {
                "200": {
                    "description": "Subject, text and HTML (JSON), or one part as is.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "subject": {"type": "string"},
                                    "text": {"type": "string"},
                                    "html": {"type": "string"},
                                },
                            }
                        },
                        "text/html": {"schema": {"type": "string"}},
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                **NOT_FOUND,
            },
            tags=["digests"],
            parameters=[
                _id("digest_id"),
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["json", "html", "text"]},
                },
            ],
        )
    },
    "/api/v1/digests/{digest_id}/test-send": {
        "post": _staff(
            "Send the digest to one address (subject prefixed [TEST])",
            {
                "202": _json(
                    {
                        "type": "object",
                        "properties": {"status": {"enum": ["queued"]}, "email": {"type": "string"}},
                    },
                    "Queued.",
                ),
                **NOT_FOUND,
            },
            tags=["digests"],
            parameters=[_id("digest_id")],
            requestBody=_body(
                {
                    "type": "object",
                    "required": ["email"],
                    "properties": {"email": {"type": "string", "format": "email"}},
                }
            ),
        )
    },
    "/api/v1/schedules": {
        "get": _staff(
            "List recurring schedules",
            {"200": _json(_page_of("Schedule"), "One page.")},
            tags=["schedules"],
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["active", "paused", "cancelled"]},
                },
                *PAGING,
            ],
        ),
        "post": _staff(
            "Create a recurring schedule (cron, or every day/week at a time, in a time zone)",
            {"201": _json(_ref("Schedule"), "Created.")},
            tags=["schedules"],
            requestBody=_body(_ref("ScheduleInput")),
        ),
    },
    "/api/v1/schedules/{schedule_id}": {
        "get": _staff(
            "One schedule",
            {"200": _json(_ref("Schedule"), "The schedule."), **NOT_FOUND},
            tags=["schedules"],
            parameters=[_id("schedule_id")],
        ),
        "patch": _staff(
            "Change a schedule",
            {"200": _json(_ref("Schedule"), "Changed."), **NOT_FOUND, **CONFLICT},
            tags=["schedules"],
            parameters=[_id("schedule_id")],
            requestBody=_body(_ref("ScheduleInput")),
        ),
        "delete": _action("Cancel a schedule for good", "schedules", "schedule_id", "Schedule"),
    },
    "/api/v1/schedules/{schedule_id}/pause": {
        "post": _action("Pause a schedule", "schedules", "schedule_id", "Schedule")
    },
    "/api/v1/schedules/{schedule_id}/resume": {
        "post": _action("Resume a paused schedule", "schedules", "schedule_id", "Schedule")
    },
}

# Feedback loop (issue 12): provider webhooks. Machines post here; authenticity is the SNS
# signature or the Postmark token, never a session.
_WEBHOOK_RESULT = _json(
    {"type": "object", "properties": {"status": {"type": "string"}, "events": {"type": "integer"}}},
    "Recorded (or confirmed, or ignored).",
)
PATHS["/api/v1/webhooks/ses"] = {
    "post": {
        "summary": "Amazon SES notifications over SNS (signature verified)",
        "tags": ["webhooks"],
        "security": [],
        "requestBody": _body({"type": "object"}),
        "responses": {
            "200": _WEBHOOK_RESULT,
            "400": {"$ref": "#/components/responses/BadRequest"},
            "403": _error("Not configured, topic not allowed, or not a genuine SNS message."),
            "409": _error("The subscription could not be confirmed."),
            "413": _error("Body too large."),
        },
    }
}
PATHS["/api/v1/webhooks/postmark"] = {
    "post": {
        "summary": "Postmark bounce and spam complaint webhooks (shared token)",
        "tags": ["webhooks"],
        "security": [],
        "requestBody": _body({"type": "object"}),
        "responses": {
            "200": _WEBHOOK_RESULT,
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": _error("Missing or wrong token."),
            "403": _error("Not configured."),
            "413": _error("Body too large."),
        },
    }
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "newsletter API",
        "version": "1",
        "description": "Subscriptions (public), accounts' password reset (public), and the staff "
        "API for subscribers, releases, digests and schedules. Errors are "
        '`{"error": {"code", "message", "fields"}}` with a 4xx status.',
    },
    "servers": [{"url": "/"}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A staff token from `flask --app newsletter staff token EMAIL`.",
            },
            "staffSession": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "responses": {
            "BadRequest": _error("Malformed request (e.g. not JSON)."),
            "Unauthorized": _error("No valid staff session or token."),
            "Forbidden": _error("Logged in, but not staff."),
            "NotFound": _error("No such row."),
            "Conflict": _error("Not possible in the current state."),
            "UnsupportedMediaType": _error("The body must be application/json."),
            "Invalid": _error("Invalid fields; `fields` says which and why."),
        },
    },
}
