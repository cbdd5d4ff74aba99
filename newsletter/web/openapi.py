"""OpenAPI 3 description of ``/api/v1``, served at ``/api/openapi.json``: the paths, what
each answers and who may call it; the schemas and builders are ``openapi_components``.

A test checks that every ``/api/v1`` route of the app is described here, and schemathesis sends
requests generated from it.
"""

from __future__ import annotations

from typing import Any

from ..config import LANGUAGES
from ..models import DeliveryStatus, DigestStatus, ScheduleStatus, SubscriberStatus
from .openapi_components import (
    CONFLICT,
    ERRORS,
    INTEGER,
    NOT_FOUND,
    PENDING,
    SCHEMAS,
    STRING,
    TIME,
    action,
    body,
    creation,
    enum,
    enum_values,
    error,
    json_answer,
    listing,
    object_of,
    one,
    path_id,
    public,
    query,
    ref,
    staff,
)

PREVIEW = {
    "description": "Subject, text and HTML (JSON), or one part as is.",
    "content": {
        "application/json": {"schema": object_of(subject=STRING, text=STRING, html=STRING)},
        "text/html": {"schema": STRING},
        "text/plain": {"schema": STRING},
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/subscriptions": public("Subscribe (double opt-in)", "SubscriptionRequest", PENDING),
    "/api/v1/account/register": public(
        "Create a site account (a verification code is emailed)", "RegistrationRequest", PENDING
    ),
    "/api/v1/account/password-reset": public(
        "Email a one-time code to reset a password",
        "EmailRequest",
        {
            "202": json_answer({"type": "object"}, "Accepted whatever the address."),
            "422": PENDING["422"],
        },
    ),
    "/api/v1/account/password-reset/confirm": public(
        "Set a new password with the emailed code",
        "PasswordResetConfirmation",
        {
            "200": json_answer({"type": "object"}, "Password changed."),
            "400": error("Wrong or expired code, or a password that breaks the policy."),
        },
    ),
    "/api/v1/subscribers": {
        "get": listing(
            "List subscribers",
            "subscribers",
            "Subscriber",
            [query("status", enum_values(SubscriberStatus)), query("language", LANGUAGES)],
            "One page, oldest first.",
        )
    },
    "/api/v1/releases": {
        "get": listing(
            "List releases, newest first", "releases", "Release", [query("language", LANGUAGES)]
        ),
        "post": creation(
            "Create a release (body HTML sanitised)", "releases", "Release", "ReleaseRequest"
        ),
    },
    "/api/v1/releases/{release_id}": {
        "get": one("One release", "releases", "release_id", "Release"),
        "patch": one(
            "Change some fields of a release",
            "releases",
            "release_id",
            "Release",
            requestBody=body("ReleaseChange"),
        ),
    },
    "/api/v1/digests": {
        "get": listing(
            "List digests, latest send time first",
            "digests",
            "Digest",
            [query("status", enum_values(DigestStatus)), query("language", LANGUAGES)],
        ),
        "post": staff(
            "Schedule a one-off digest (now when send_at is absent)",
            "digests",
            {
                "201": json_answer(
                    {
                        **object_of(
                            id=INTEGER, status=enum(enum_values(DigestStatus)), send_at=TIME
                        ),
                        "required": ["id", "status"],
                    },
                    "Scheduled; a worker starts it at send_at.",
                )
            },
            requestBody=body("DigestRequest"),
        ),
    },
    "/api/v1/digests/{digest_id}": {
        "get": one("Status and counters of a digest", "digests", "digest_id", "Digest")
    },
    "/api/v1/digests/{digest_id}/pause": {
        "post": action("Pause (scheduled or sending)", "digests", "digest_id", "Digest")
    },
    "/api/v1/digests/{digest_id}/resume": {
        "post": action("Resume a paused digest", "digests", "digest_id", "Digest")
    },
    "/api/v1/digests/{digest_id}/cancel": {
        "post": action(
            "Cancel: status failed, reason cancelled; nothing more is sent",
            "digests",
            "digest_id",
            "Digest",
        )
    },
    "/api/v1/digests/{digest_id}/resend-failed": {
        "post": staff(
            "Queue the failed deliveries of a digest again",
            "digests",
            {
                "200": json_answer(
                    object_of(requeued=INTEGER, digest=ref("Digest")),
                    "How many deliveries were queued again.",
                ),
                **NOT_FOUND,
                **CONFLICT,
            },
            parameters=[path_id("digest_id")],
        )
    },
    "/api/v1/digests/{digest_id}/deliveries": {
        "get": listing(
            "Who received a digest: one row per recipient with the SMTP answer",
            "digests",
            "Delivery",
            [path_id("digest_id"), query("status", enum_values(DeliveryStatus))],
            responses=NOT_FOUND,
        )
    },
    "/api/v1/digests/{digest_id}/preview": {
        "get": staff(
            "The digest as a subscriber will see it",
            "digests",
            {"200": PREVIEW, **NOT_FOUND},
            parameters=[path_id("digest_id"), query("format", ["json", "html", "text"])],
        )
    },
    "/api/v1/digests/{digest_id}/test-send": {
        "post": staff(
            "Send the digest to one address (subject prefixed [TEST])",
            "digests",
            {
                "202": json_answer(object_of(status={"enum": ["queued"]}, email=STRING), "Queued."),
                **NOT_FOUND,
            },
            parameters=[path_id("digest_id")],
            requestBody=body("EmailRequest"),
        )
    },
    "/api/v1/schedules": {
        "get": listing(
            "List recurring schedules",
            "schedules",
            "Schedule",
            [query("status", enum_values(ScheduleStatus))],
        ),
        "post": creation(
            "Create a recurring schedule (cron, or every day/week at a time, in a time zone)",
            "schedules",
            "Schedule",
            "ScheduleRequest",
        ),
    },
    "/api/v1/schedules/{schedule_id}": {
        "get": one("One schedule", "schedules", "schedule_id", "Schedule"),
        "patch": one(
            "Change a schedule",
            "schedules",
            "schedule_id",
            "Schedule",
            responses=CONFLICT,
            requestBody=body("ScheduleChange"),
        ),
        "delete": action("Cancel a schedule for good", "schedules", "schedule_id", "Schedule"),
    },
    "/api/v1/schedules/{schedule_id}/pause": {
        "post": action("Pause a schedule", "schedules", "schedule_id", "Schedule")
    },
    "/api/v1/schedules/{schedule_id}/resume": {
        "post": action("Resume a paused schedule", "schedules", "schedule_id", "Schedule")
    },
}


def _webhook(summary: str, refusals: dict[str, str]) -> dict[str, Any]:
    """Feedback loop (issue 12): provider webhooks. Machines post here; authenticity is the
    SNS signature or the Postmark token, never a session."""
    result = object_of(status=STRING, events=INTEGER)
    responses = {
        "200": json_answer(result, "Recorded (or confirmed, or ignored)."),
        "400": ERRORS["400"],
    }
    responses |= {code: error(text) for code, text in refusals.items()}
    return {
        "post": {
            "summary": summary,
            "tags": ["webhooks"],
            "security": [],
            "requestBody": body(),
            "responses": {**responses, "413": error("Body too large.")},
        }
    }


PATHS["/api/v1/webhooks/ses"] = _webhook(
    "Amazon SES notifications over SNS (signature verified)",
    {
        "403": "Not configured, topic not allowed, or not a genuine SNS message.",
        "409": "The subscription could not be confirmed.",
    },
)
PATHS["/api/v1/webhooks/postmark"] = _webhook(
    "Postmark bounce and spam complaint webhooks (shared token)",
    {"401": "Missing or wrong token.", "403": "Not configured."},
)

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
            "BadRequest": error("Malformed request (e.g. not JSON)."),
            "Unauthorized": error("No valid staff session or token."),
            "Forbidden": error("Logged in, but not staff."),
            "NotFound": error("No such row."),
            "Conflict": error("Not possible in the current state."),
            "UnsupportedMediaType": error("The body must be application/json."),
            "Invalid": error("Invalid fields; `fields` says which and why."),
        },
    },
}
