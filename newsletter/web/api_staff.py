"""Staff JSON API (``/api/v1``): subscribers, releases, schedules, and the OpenAPI
description (``/api/openapi.json``); digests are ``api_digests``, on the same blueprint.

Every route needs a staff session or ``Authorization: Bearer <token>``. Views only parse input,
call the domain (and delivery for mail), commit, and answer; the worker does the sending and
the scheduling (web processes never import the scheduler).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy import select

from ..config import LANGUAGES
from ..domain.releases import create_release, iso, release_as_dict, releases_query, update_release
from ..domain.schedules import (
    create_schedule,
    schedule_as_dict,
    schedules_query,
    set_schedule_status,
    update_schedule,
)
from ..models import DigestSchedule, Release, ScheduleStatus, Subscriber, SubscriberStatus
from ..scheduling.triggers import next_fire_time
from . import api_digests  # noqa: F401 - its routes join the blueprint
from .api_common import (
    blueprint,
    choice_arg,
    create_from_body,
    get_or_404,
    json_body,
    optional_json_body,
    page_answer,
    write,
)
from .auth import requires, staff_required
from .openapi import OPENAPI
from .two_factor_gate import step_up

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
    status = choice_arg("status", list(SubscriberStatus))
    language = choice_arg("language", list(LANGUAGES))
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    if language:
        query = query.where(Subscriber.language == language)
    return page_answer(query, subscriber_as_dict)


# ---------------------------------------------------------------------------------------------
# Releases


@blueprint.get("/v1/releases")
@requires("releases:read")
def get_releases():
    language = choice_arg("language", list(LANGUAGES))
    return page_answer(releases_query(language), release_as_dict)


@blueprint.post("/v1/releases")
@requires("releases:write")
def post_release():
    release = create_from_body(create_release, "release")
    return jsonify(release_as_dict(release)), 201


@blueprint.get("/v1/releases/<int:release_id>")
@requires("releases:read")
def get_release(release_id: int):
    return jsonify(release_as_dict(get_or_404(Release, release_id, "release")))


@blueprint.patch("/v1/releases/<int:release_id>")
@requires("releases:write")
def patch_release(release_id: int):
    release = get_or_404(Release, release_id, "release")
    write(lambda: update_release(release, json_body()), "release.update", "release")
    return jsonify(release_as_dict(release))


# ---------------------------------------------------------------------------------------------
# Recurring schedules


def _schedule_json(schedule: DigestSchedule) -> dict[str, Any]:
    return schedule_as_dict(schedule, next_fire_time(schedule))


@blueprint.get("/v1/schedules")
@requires("digests:read")
def get_schedules():
    return page_answer(schedules_query(choice_arg("status", list(ScheduleStatus))), _schedule_json)


@blueprint.post("/v1/schedules")
@requires("digests:send")
@step_up
def post_schedule():
    schedule = create_from_body(create_schedule, "schedule", lambda row: {"cron": row.cron})
    return jsonify(_schedule_json(schedule)), 201


@blueprint.get("/v1/schedules/<int:schedule_id>")
@requires("digests:read")
def get_schedule(schedule_id: int):
    return jsonify(_schedule_json(get_or_404(DigestSchedule, schedule_id, "schedule")))


@blueprint.patch("/v1/schedules/<int:schedule_id>")
@requires("digests:send")
def patch_schedule(schedule_id: int):
    schedule = get_or_404(DigestSchedule, schedule_id, "schedule")
    write(lambda: update_schedule(schedule, json_body()), "schedule.update", "schedule")
    return jsonify(_schedule_json(schedule))


def _schedule_status(schedule_id: int, status: str) -> Response:
    optional_json_body()
    schedule = get_or_404(DigestSchedule, schedule_id, "schedule")

    def change() -> DigestSchedule:
        set_schedule_status(schedule, status)
        return schedule

    write(change, f"schedule.{status}", "schedule")
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
