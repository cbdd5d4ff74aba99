"""The parts of the OpenAPI document (``openapi``) that its paths are written with: schemas,
parameters, and the builders of operations.

Request bodies are the domain's pydantic models (``domain.requests``): their JSON schemas are
the document's ``components/schemas``, in OpenAPI 3.0's dialect. Languages, statuses and limits
come from ``config`` and the models' enums; what is written here is what cannot be derived, the
shapes of the answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..config import LANGUAGES, MAX_PAGE_SIZE
from ..domain import requests
from ..models import DeliveryStatus, DigestStatus, ScheduleStatus, SubscriberStatus

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    requests.SubscriptionRequest,
    requests.RegistrationRequest,
    requests.EmailRequest,
    requests.PasswordResetConfirmation,
    requests.ReleaseRequest,
    requests.ReleaseChange,
    requests.DigestRequest,
    requests.ScheduleRequest,
    requests.ScheduleChange,
)


def _openapi30(node: Any) -> Any:
    """A JSON Schema (2020-12, pydantic's) in OpenAPI 3.0's dialect: ``nullable`` instead of
    a union with ``null``, one ``example`` instead of ``examples``."""
    if isinstance(node, list):
        return [_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    others = [option for option in node.get("anyOf", ()) if option != {"type": "null"}]
    if "anyOf" in node and len(others) == 1 < len(node["anyOf"]):
        del node["anyOf"]
        node = {**others[0], **node, "nullable": True}
    if "examples" in node:
        node["example"] = node.pop("examples")[0]
    return {key: _openapi30(value) for key, value in node.items()}


def request_schemas() -> dict[str, Any]:
    """The request models' schemas, by model name (``#/components/schemas/<name>``)."""
    _refs, schema = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    return _openapi30(schema["$defs"])


def enum_values(enum: Any) -> list[str]:
    return [member.value for member in enum]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body(model: str | None = None) -> dict[str, Any]:
    schema = ref(model) if model else {"type": "object"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_answer(ref("Error"), description)


def response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def object_of(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def enum(values: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def page_of(name: str) -> dict[str, Any]:
    return object_of(
        items={"type": "array", "items": ref(name)}, page=INTEGER, per_page=INTEGER,
        total=INTEGER, pages=INTEGER,
    )  # fmt: skip


INTEGER = {"type": "integer"}
STRING = {"type": "string"}
MAYBE_STRING = {"type": "string", "nullable": True}
MAYBE_INTEGER = {"type": "integer", "nullable": True}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {**TIME, "nullable": True}
LANGUAGE = enum(LANGUAGES)

ERRORS = {code: response(name) for code, name in (
    ("400", "BadRequest"), ("401", "Unauthorized"), ("403", "Forbidden"),
    ("415", "UnsupportedMediaType"), ("422", "Invalid"),
)}  # fmt: skip
NOT_FOUND = {"404": response("NotFound")}
CONFLICT = {"409": response("Conflict")}
TOO_MANY = {"429": error("Too many requests.")}
STAFF = [{"bearerToken": []}, {"staffSession": []}]
PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50},
    },
]


def query(name: str, values: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": enum(values)}


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": INTEGER}


def staff(summary: str, tag: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": [tag],
        "security": STAFF,
        "responses": {**responses, **ERRORS},
        **extra,
    }


def listing(
    summary: str,
    tag: str,
    schema: str,
    filters: list[dict[str, Any]],
    description: str = "One page.",
    responses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A GET of one page of ``schema`` rows, narrowed by ``filters`` (its other parameters)."""
    answers = {"200": json_answer(page_of(schema), description), **(responses or {})}
    return staff(summary, tag, answers, parameters=[*filters, *PAGING])


def creation(summary: str, tag: str, schema: str, model: str) -> dict[str, Any]:
    """A POST that creates a ``schema`` row from a ``model`` body, answering it with 201."""
    answers = {"201": json_answer(ref(schema), "Created.")}
    return staff(summary, tag, answers, requestBody=body(model))


def one(
    summary: str,
    tag: str,
    id_name: str,
    schema: str,
    responses: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An operation on one row by id, answering the row (404 when there is none)."""
    answers = {"200": json_answer(ref(schema), "The row."), **NOT_FOUND, **(responses or {})}
    return staff(summary, tag, answers, parameters=[path_id(id_name)], **extra)


def action(summary: str, tag: str, id_name: str, schema: str) -> dict[str, Any]:
    """A state change of one row (pause, resume, cancel): 409 when its state does not allow it."""
    return one(summary, tag, id_name, schema, responses=CONFLICT)


def public(summary: str, model: str, responses: dict[str, Any]) -> dict[str, Any]:
    """A public route (no login), limited per caller."""
    return {
        "post": {
            "summary": summary,
            "tags": ["public"],
            "security": [],
            "requestBody": body(model),
            "responses": {**responses, "415": response("UnsupportedMediaType"), **TOO_MANY},
        }
    }


PENDING = {
    "202": json_answer(
        object_of(status={"enum": ["pending"]}),
        "Accepted, whatever the address's state (no enumeration).",
    ),
    "422": response("Invalid"),
}

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
                    "message": STRING,
                    "fields": {
                        "type": "object",
                        "additionalProperties": STRING,
                        "description": "Field name → what is wrong with it.",
                    },
                },
            }
        },
    },
    "Subscriber": object_of(
        id=INTEGER, email={"type": "string", "format": "email"}, name=MAYBE_STRING,
        language=LANGUAGE, status=enum(enum_values(SubscriberStatus)), created_at=TIME,
        consent_at=MAYBE_TIME, consent_source=MAYBE_STRING, confirmed_at=MAYBE_TIME,
        unsubscribed_at=MAYBE_TIME, bounced_at=MAYBE_TIME, hard_bounces=INTEGER,
    ),
    "Release": object_of(
        id=INTEGER, title=STRING, dateline=MAYBE_STRING, summary=STRING,
        body={"type": "string", "description": "Sanitised HTML."}, url=MAYBE_STRING,
        image_url=MAYBE_STRING, video_url=MAYBE_STRING, language=STRING, published_at=TIME,
        source_guid=MAYBE_STRING, translation_of=MAYBE_INTEGER, created_at=TIME, updated_at=TIME,
    ),
    "Digest": {
        **object_of(
            id=INTEGER, status=enum(enum_values(DigestStatus)), language=STRING,
            subject=MAYBE_STRING, send_at=TIME, paused={"type": "boolean"},
            failure_reason={
                **MAYBE_STRING,
                "description": "With status failed: cancelled, missed, or what went wrong.",
            },
            schedule_id=MAYBE_INTEGER, recipients=INTEGER, sent=INTEGER, failed=INTEGER,
            pending={"type": "integer", "description": "Queued or being sent."},
            cancelled={
                "type": "integer",
                "description": "Deliveries called off: the subscriber left (or bounced) first.",
            },
            created_at=TIME, started_at=MAYBE_TIME, finished_at=MAYBE_TIME,
            releases={"type": "array", "items": INTEGER},
        ),
        "required": ["id", "status", "recipients", "sent", "failed"],
    },
    "Delivery": object_of(
        id=INTEGER, subscriber_id=INTEGER, email=MAYBE_STRING,
        status=enum(enum_values(DeliveryStatus)), attempts=INTEGER, smtp_code=MAYBE_INTEGER,
        smtp_response=MAYBE_STRING, updated_at=MAYBE_TIME, next_attempt_at=MAYBE_TIME,
    ),
    "Schedule": object_of(
        id=INTEGER, language=STRING, cron=STRING, timezone=STRING, subject=MAYBE_STRING,
        status=enum(enum_values(ScheduleStatus)), next_run_at=MAYBE_TIME, created_at=TIME,
        updated_at=TIME,
    ),
    **request_schemas(),
}  # fmt: skip
