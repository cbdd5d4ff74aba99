"""Staff JSON API (``/api/v1``): subscribers, releases, digests, schedules, and the OpenAPI
description (``/api/openapi.json``).

Every route needs a staff session or ``Authorization: Bearer <token>``. Views only parse input,
call the domain (and delivery for mail), commit, and answer; the worker does the sending and
the scheduling (web processes never import the scheduler).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ..config import LANGUAGES, MAX_PAGE_SIZE
from ..delivery.digest_previews import preview_message, queue_test_send
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.audit import address_hash
from ..domain.digests import (
    DigestStateError,
    cancel_digest,
    create_digest,
    create_schedule,
    deliveries_query,
    digest_as_dict,
    digests_query,
    pause_digest,
    prepare_resend_failed,
    resume_digest,
    schedule_as_dict,
    schedules_query,
    set_schedule_status,
    update_schedule,
)
from ..domain.releases import (
    InvalidInput,
    Page,
    create_release,
    iso,
    list_releases,
    paginate,
    release_as_dict,
    update_release,
)
from ..extensions import csrf, db
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestSchedule,
    DigestStatus,
    Release,
    ScheduleStatus,
    Subscriber,
    SubscriberStatus,
)
from ..scheduling.triggers import next_fire_time
from .auth import audit, bearer_token, requires, staff_required
from .inputs import InputError, explain, is_json_request, read_payload, say
from .openapi import OPENAPI
from .two_factor_gate import step_up

blueprint = Blueprint("api_staff", __name__, url_prefix="/api")
# Scripts authenticate with bearer tokens, which a cross-site page cannot send. Browser
# sessions are guarded by ``_guard_session_writes`` below (JSON bodies only) instead of tokens.
csrf.exempt(blueprint)

MAX_ID = 2**63 - 1  # beyond BIGINT: no such row, and PostgreSQL would refuse the query


@blueprint.before_request
def _guard_session_writes() -> None:
    """A write from a browser session must carry a JSON body, which cross-site forms cannot."""
    if (
        request.method in ("POST", "PATCH", "PUT", "DELETE")
        and bearer_token() is None
        and current_user.is_authenticated
        and not is_json_request()
    ):
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")


# ---------------------------------------------------------------------------------------------
# Helpers


def _invalid(fields: dict[str, str], message: str | None = None) -> InputError:
    return InputError(
        422,
        "invalid",
        message or _("Check the highlighted fields."),
        {name: say(text) for name, text in fields.items()},
    )


def _json_body() -> dict[str, Any]:
    if not is_json_request():
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")
    return read_payload(allow_form=False)


def _optional_json_body() -> dict[str, Any]:
    """Action routes (pause, cancel...) take no body; an empty or JSON one is accepted."""
    if not request.get_data(cache=True):
        return {}
    return _json_body()


def _int_arg(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise _invalid({name: "Must be a whole number."})
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" between {minimum} and {maximum}" if maximum else f" of at least {minimum}"
        raise _invalid({name: f"Must be a number{bound}."})
    return value


def _choice_arg(name: str, choices: list[str]) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise _invalid({name: "One of: " + ", ".join(choices) + "."})
    return value


def _paging() -> tuple[int, int]:
    return _int_arg("page", 1), _int_arg("per_page", 50, 1, MAX_PAGE_SIZE)


def _page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    return {
        "items": items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
    }


def _get_or_404(model: type, row_id: int, what: str) -> Any:
    row = db.session.get(model, row_id) if 0 < row_id <= MAX_ID else None
    if row is None:
        raise InputError(404, "not_found", f"No {what} {row_id}.")
    return row


def _conflict(exc: DigestStateError) -> InputError:
    db.session.rollback()
    return InputError(409, "conflict", str(exc))


# ---------------------------------------------------------------------------------------------
# Subscribers


def subscriber_as_dict(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "status": subscriber.status,
        "created_at": iso(subscriber.created_at),
        "consent_at": iso(subscriber.consent_at),
        "consent_source": subscriber.consent_source,
        "confirmed_at": iso(subscriber.confirmed_at),
        "unsubscribed_at": iso(subscriber.unsubscribed_at),
        "bounced_at": iso(subscriber.bounced_at),
        "hard_bounces": subscriber.hard_bounces,
    }


@blueprint.get("/v1/subscribers")
@requires("subscribers:read")
def list_subscribers():
    status = _choice_arg("status", list(SubscriberStatus))
    language = _choice_arg("language", list(LANGUAGES))
    page, per_page = _paging()
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    if language:
        query = query.where(Subscriber.language == language)
    result = paginate(query, page=page, per_page=per_page)
    return jsonify(_page_json(result, [subscriber_as_dict(row) for row in result.items]))


# ---------------------------------------------------------------------------------------------
# Releases


@blueprint.get("/v1/releases")
@requires("releases:read")
def get_releases():
    language = _choice_arg("language", list(LANGUAGES))
    page, per_page = _paging()
    result = list_releases(page=page, per_page=per_page, language=language)
    return jsonify(_page_json(result, [release_as_dict(row) for row in result.items]))


@blueprint.post("/v1/releases")
@requires("releases:write")
def post_release():
    try:
        release = create_release(_json_body())
    except InvalidInput as exc:
        db.session.rollback()
        raise _invalid(exc.fields) from None
    audit("release.create", "release", release.id)
    db.session.commit()
    return jsonify(release_as_dict(release)), 201


@blueprint.get("/v1/releases/<int:release_id>")
@requires("releases:read")
def get_release(release_id: int):
    return jsonify(release_as_dict(_get_or_404(Release, release_id, "release")))


@blueprint.patch("/v1/releases/<int:release_id>")
@requires("releases:write")
def patch_release(release_id: int):
    release = _get_or_404(Release, release_id, "release")
    try:
        update_release(release, _json_body())
    except InvalidInput as exc:
        db.session.rollback()
        raise _invalid(exc.fields) from None
    audit("release.update", "release", release.id)
    db.session.commit()
    return jsonify(release_as_dict(release))


# ---------------------------------------------------------------------------------------------
# Digests


@blueprint.get("/v1/digests")
@requires("digests:read")
def get_digests():
    status = _choice_arg("status", list(DigestStatus))
    language = _choice_arg("language", list(LANGUAGES))
    page, per_page = _paging()
    result = paginate(digests_query(status, language), page=page, per_page=per_page)
    return jsonify(_page_json(result, [digest_as_dict(row) for row in result.items]))


@blueprint.post("/v1/digests")
@requires("digests:send")
@step_up
def post_digest():
    try:
        digest = create_digest(_json_body())
    except InvalidInput as exc:
        db.session.rollback()
        raise _invalid(exc.fields) from None
    audit("digest.create", "digest", digest.id, {"language": digest.language})
    db.session.commit()
    return jsonify(id=digest.id, status=digest.status, send_at=iso(digest.send_at)), 201


@blueprint.get("/v1/digests/<int:digest_id>")
@requires("digests:read")
def get_digest(digest_id: int):
    return jsonify(digest_as_dict(_get_or_404(Digest, digest_id, "digest")))


def _digest_action(digest_id: int, action, name: str) -> Response:
    _optional_json_body()
    digest = _get_or_404(Digest, digest_id, "digest")
    try:
        action(digest)
    except DigestStateError as exc:
        raise _conflict(exc) from None
    audit(f"digest.{name}", "digest", digest.id)
    db.session.commit()
    db.session.refresh(digest)
    return jsonify(digest_as_dict(digest))


@blueprint.post("/v1/digests/<int:digest_id>/pause")
@requires("digests:send")
def pause(digest_id: int):
    return _digest_action(digest_id, pause_digest, "pause")


@blueprint.post("/v1/digests/<int:digest_id>/resume")
@requires("digests:send")
@step_up
def resume(digest_id: int):
    return _digest_action(digest_id, resume_digest, "resume")


@blueprint.post("/v1/digests/<int:digest_id>/cancel")
@requires("digests:send")
def cancel(digest_id: int):
    return _digest_action(digest_id, cancel_digest, "cancel")


@blueprint.post("/v1/digests/<int:digest_id>/resend-failed")
@requires("digests:send")
@step_up
def resend_failed(digest_id: int):
    _optional_json_body()
    digest = _get_or_404(Digest, digest_id, "digest")
    try:
        requeued = prepare_resend_failed(digest)
    except DigestStateError as exc:
        raise _conflict(exc) from None
    audit("digest.resend_failed", "digest", digest.id, {"requeued": requeued})
    db.session.commit()
    return jsonify(requeued=requeued, digest=digest_as_dict(digest))


@blueprint.get("/v1/digests/<int:digest_id>/deliveries")
@requires("digests:read")
def get_deliveries(digest_id: int):
    _get_or_404(Digest, digest_id, "digest")
    status = _choice_arg("status", list(DeliveryStatus))
    page, per_page = _paging()
    result = paginate(deliveries_query(digest_id, status), page=page, per_page=per_page)
    emails = dict(
        db.session.execute(
            select(Subscriber.id, Subscriber.email).where(
                Subscriber.id.in_([row.subscriber_id for row in result.items])
            )
        ).all()
    )
    return jsonify(_page_json(result, [delivery_as_dict(row, emails) for row in result.items]))


def delivery_as_dict(delivery: Delivery, emails: dict[int, str]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "subscriber_id": delivery.subscriber_id,
        "email": emails.get(delivery.subscriber_id),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "smtp_code": delivery.smtp_code,
        "smtp_response": delivery.smtp_response,
        "updated_at": iso(delivery.updated_at),
        "next_attempt_at": iso(delivery.next_attempt_at)
        if delivery.status == DeliveryStatus.QUEUED
        else None,
    }


@blueprint.get("/v1/digests/<int:digest_id>/preview")
@requires("digests:draft")
def preview(digest_id: int):
    digest = _get_or_404(Digest, digest_id, "digest")
    fmt = _choice_arg("format", ["json", "html", "text"]) or "json"
    message = preview_message(digest)
    db.session.rollback()  # a preview composes without keeping anything
    parts = {
        part.get_content_subtype(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }
    if fmt == "html":
        return Response(parts.get("html", ""), mimetype="text/html")
    if fmt == "text":
        return Response(parts.get("plain", ""), mimetype="text/plain")
    return jsonify(
        subject=str(message["Subject"]), text=parts.get("plain", ""), html=parts.get("html", "")
    )


@blueprint.post("/v1/digests/<int:digest_id>/test-send")
@requires("digests:draft")
def test_send(digest_id: int):
    payload = _json_body()
    digest = _get_or_404(Digest, digest_id, "digest")
    try:
        address = normalise_address(payload.get("email"))
    except InvalidAddress as exc:
        raise _invalid({"email": explain(exc)}) from None
    queue_test_send(digest, address.email)
    # The address by keyed hash only: the log is never rewritten, an erasure could
    # not take it out again.
    audit(
        "digest.test_send",
        "digest",
        digest.id,
        {"to_hash": address_hash(address.key, current_app.config["SECRET_KEY"])},
    )
    db.session.commit()
    return jsonify(status="queued", email=address.email), 202


# ---------------------------------------------------------------------------------------------
# Recurring schedules


def _schedule_json(schedule: DigestSchedule) -> dict[str, Any]:
    return schedule_as_dict(schedule, next_fire_time(schedule))


@blueprint.get("/v1/schedules")
@requires("digests:read")
def get_schedules():
    status = _choice_arg("status", list(ScheduleStatus))
    page, per_page = _paging()
    result = paginate(schedules_query(status), page=page, per_page=per_page)
    return jsonify(_page_json(result, [_schedule_json(row) for row in result.items]))


@blueprint.post("/v1/schedules")
@requires("digests:send")
@step_up
def post_schedule():
    try:
        schedule = create_schedule(_json_body())
    except InvalidInput as exc:
        db.session.rollback()
        raise _invalid(exc.fields) from None
    audit("schedule.create", "schedule", schedule.id, {"cron": schedule.cron})
    db.session.commit()
    return jsonify(_schedule_json(schedule)), 201


@blueprint.get("/v1/schedules/<int:schedule_id>")
@requires("digests:read")
def get_schedule(schedule_id: int):
    return jsonify(_schedule_json(_get_or_404(DigestSchedule, schedule_id, "schedule")))


@blueprint.patch("/v1/schedules/<int:schedule_id>")
@requires("digests:send")
def patch_schedule(schedule_id: int):
    schedule = _get_or_404(DigestSchedule, schedule_id, "schedule")
    try:
        update_schedule(schedule, _json_body())
    except InvalidInput as exc:
        db.session.rollback()
        raise _invalid(exc.fields) from None
    except DigestStateError as exc:
        raise _conflict(exc) from None
    audit("schedule.update", "schedule", schedule.id)
    db.session.commit()
    return jsonify(_schedule_json(schedule))


def _schedule_status(schedule_id: int, status: str) -> Response:
    _optional_json_body()
    schedule = _get_or_404(DigestSchedule, schedule_id, "schedule")
    try:
        set_schedule_status(schedule, status)
    except DigestStateError as exc:
        raise _conflict(exc) from None
    audit(f"schedule.{status}", "schedule", schedule.id)
    db.session.commit()
    return jsonify(_schedule_json(schedule))


@blueprint.post("/v1/schedules/<int:schedule_id>/pause")
@requires("digests:send")
def pause_schedule(schedule_id: int):
    return _schedule_status(schedule_id, ScheduleStatus.PAUSED)


@blueprint.post("/v1/schedules/<int:schedule_id>/resume")
@requires("digests:send")
@step_up
def resume_schedule(schedule_id: int):
    return _schedule_status(schedule_id, ScheduleStatus.ACTIVE)


@blueprint.delete("/v1/schedules/<int:schedule_id>")
@requires("digests:send")
def delete_schedule(schedule_id: int):
    """Cancelling keeps the row (its past runs point at it); it never fires again."""
    return _schedule_status(schedule_id, ScheduleStatus.CANCELLED)


# ---------------------------------------------------------------------------------------------
# Description


@blueprint.get("/openapi.json")
@staff_required
def openapi():
    return jsonify(OPENAPI)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
