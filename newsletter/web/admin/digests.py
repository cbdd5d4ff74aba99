"""Digests in the console: the history, one-off and recurring digests, one digest's
progress, preview, test copy, pause, resume and cancel."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _

from ...config import CONSOLE_PAGE_SIZE, DEFAULT_TIMEZONE, DIGEST_PROGRESS_POLL_SECONDS, LANGUAGES
from ...delivery.digest_previews import preview_message
from ...domain.addresses import InvalidAddress, normalise_address
from ...domain.digests import (
    DigestStateError,
    Progress,
    cancel_digest,
    create_digest,
    digest_progress,
    digests_query,
    get_digest,
    pause_digest,
    resume_digest,
)
from ...domain.feedback import FeedbackCounts, feedback_by_digest
from ...domain.releases import InvalidInput, paginate
from ...domain.schedules import (
    create_schedule,
    schedule_as_dict,
    schedules_query,
    set_schedule_status,
)
from ...extensions import db
from ...models import Digest, DigestSchedule, DigestStatus, ScheduleStatus
from ...scheduling.triggers import next_fire_time
from ..auth import audit, requires
from ..digest_test_copy import send_test_copy
from ..inputs import InputError, say
from ..two_factor_gate import step_up, step_up_response
from .console import ID, back_to, blueprint, console_time, int_arg, saved, status_label
from .forms import local_time_to_iso, zone_of_form

SCHEDULE_DEFAULTS = {"timezone": DEFAULT_TIMEZONE, "every": "week", "at": "08:00"}


def digest_summary(digest: Digest, progress: Progress) -> str:
    """One sentence on where a digest stands, in the staff member's language."""
    counts = {
        "done": progress.done,
        "recipients": progress.recipients,
        "sent": progress.sent,
        "failed": progress.failed,
    }
    if digest.status == DigestStatus.SCHEDULED:
        text = _("Scheduled for %(time)s.", time=console_time(digest.send_at))
    elif digest.status == DigestStatus.SENDING:
        text = _(
            "Sending: %(done)s of %(recipients)s done (%(sent)s sent, %(failed)s failed).", **counts
        )
    elif digest.status == DigestStatus.SENT:
        text = _("Done: %(sent)s sent, %(failed)s failed, out of %(recipients)s.", **counts)
    elif digest.status == DigestStatus.SKIPPED:
        text = _("Skipped: there was nothing new to send.")
    elif digest.failure_reason == "cancelled":
        text = _("Cancelled: %(sent)s had been sent.", **counts)
    elif digest.failure_reason == "missed":
        text = _("Missed: no worker was running at its time.")
    else:
        text = _("Failed: %(reason)s", reason=digest.failure_reason or "")
    if digest.paused and digest.status in (DigestStatus.SCHEDULED, DigestStatus.SENDING):
        text += " " + _("Paused.")
    return text


def progress_json(digest: Digest) -> dict[str, Any]:
    progress = digest_progress(digest)
    finished = digest.status not in (DigestStatus.SCHEDULED, DigestStatus.SENDING)
    return {
        "id": digest.id,
        "status": digest.status,
        "status_label": status_label(digest.status),
        "paused": digest.paused,
        "recipients": progress.recipients,
        "sent": progress.sent,
        "failed": progress.failed,
        "pending": progress.pending,
        "cancelled": progress.cancelled,
        "done": progress.done,
        "finished": finished,
        "summary": digest_summary(digest, progress),
    }


def render_digests(page: int, status: int = 200, **overrides: Any):
    """The digests page: its forms (empty, or as posted with their errors) and the history."""
    context: dict[str, Any] = {
        "page": paginate(digests_query(), page=page, per_page=CONSOLE_PAGE_SIZE),
        "schedules": [
            schedule_as_dict(s, next_fire_time(s))
            for s in db.session.scalars(schedules_query()).all()
        ],
        "languages": LANGUAGES,
        "values": {"timezone": DEFAULT_TIMEZONE},
        "errors": {},
        "schedule_values": dict(SCHEDULE_DEFAULTS),
        "schedule_errors": {},
    }
    context.update(overrides)
    return render_template("admin/digests.html", **context), status


def refused_form(**form: Any):
    """A refused form of the digests page: nothing kept, and the page again (422) with ``form``,
    its values as posted and its errors."""
    db.session.rollback()
    return render_digests(1, 422, **form)


@blueprint.get("/digests")
@requires("digests:read")
def digests():
    values = {"language": str(get_locale() or "fr")[:2], "timezone": DEFAULT_TIMEZONE}
    return render_digests(int_arg("page"), values=values)


@blueprint.post("/digests")
@requires("digests:send")
@step_up
def create_one_off_digest():
    form = request.form
    values = {
        name: form.get(name, "") for name in ("language", "subject", "when", "send_at", "timezone")
    }
    try:
        data: dict[str, Any] = {"language": form.get("language"), "subject": form.get("subject")}
        if form.get("when") == "at":
            if not form.get("send_at"):
                raise InvalidInput({"send_at": _("Give a date and a time.")})
            data["send_at"] = local_time_to_iso(form["send_at"], zone_of_form(form), "send_at")
        digest = create_digest(data)
    except InvalidInput as exc:
        return refused_form(values=values, errors=exc.fields)
    audit("digest.create", "digest", digest.id, {"language": digest.language})
    return saved("admin.digest", _("The digest is scheduled."), digest_id=digest.id)


@blueprint.post("/digests/schedules")
@requires("digests:send")
@step_up
def create_recurring_digest():
    form = request.form
    names = ("language", "subject", "every", "at", "weekday", "timezone")
    values = {name: form.get(name, "") for name in names}
    data = {name: value for name, value in values.items() if value != ""}
    if data.get("every") == "day":
        data.pop("weekday", None)
    try:
        schedule = create_schedule(data)
    except InvalidInput as exc:
        return refused_form(schedule_values=values, schedule_errors=exc.fields)
    audit("schedule.create", "schedule", schedule.id, {"cron": schedule.cron})
    return saved("admin.digests", _("The recurring digest is saved."))


@blueprint.post(f"/digests/schedules/<{ID}:schedule_id>/<any(pause, resume, cancel):action>")
@requires("digests:send")
def change_schedule(schedule_id: int, action: str):
    schedule = db.get_or_404(DigestSchedule, schedule_id)
    # Resuming sends to the whole list again; pausing and cancelling only stop it.
    if action == "resume" and (asked := step_up_response()) is not None:
        return asked
    status = {
        "pause": ScheduleStatus.PAUSED,
        "resume": ScheduleStatus.ACTIVE,
        "cancel": ScheduleStatus.CANCELLED,
    }[action]
    try:
        set_schedule_status(schedule, status)
        audit(f"schedule.{action}", "schedule", schedule.id)
        db.session.commit()
    except DigestStateError:
        db.session.rollback()
        raise InputError(409, "conflict", _("This schedule is cancelled.")) from None
    return back_to("admin.digests")


def load_digest(digest_id: int) -> Digest:
    digest = get_digest(digest_id)
    if digest is None:
        abort(404)
    return digest


@blueprint.get(f"/digests/<{ID}:digest_id>")
@requires("digests:read")
def digest(digest_id: int):
    row = load_digest(digest_id)
    return render_template(
        "admin/digest.html",
        digest=row,
        feedback=feedback_by_digest([row.id]).get(row.id, FeedbackCounts()),
        progress=progress_json(row),
        poll_seconds=DIGEST_PROGRESS_POLL_SECONDS,
    )


@blueprint.get(f"/digests/<{ID}:digest_id>/progress")
@requires("digests:read")
def digest_progress_json(digest_id: int):
    response = jsonify(progress_json(load_digest(digest_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get(f"/digests/<{ID}:digest_id>/preview")
@requires("digests:draft")
def preview_digest(digest_id: int):
    row = load_digest(digest_id)
    message = preview_message(row)
    parts = {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    }
    return render_template(
        "admin/digest_preview.html",
        digest=row,
        subject=str(message["Subject"] or ""),
        headers={name: str(message[name] or "") for name in ("From", "List-Unsubscribe")},
        text=parts.get("text/plain", ""),
        html=parts.get("text/html", ""),
    )


@blueprint.post(f"/digests/<{ID}:digest_id>/test")
@requires("digests:draft")
def test_send_digest(digest_id: int):
    row = load_digest(digest_id)
    email = request.form.get("email")
    try:
        address = normalise_address(email)
    except InvalidAddress as exc:
        return render_template(
            "admin/digest.html",
            digest=row,
            progress=progress_json(row),
            poll_seconds=DIGEST_PROGRESS_POLL_SECONDS,
            test_email=email or "",
            test_error=say(exc),
        ), 422
    send_test_copy(row, address)
    notice = _("A test copy is on its way to %(email)s.", email=address.email)
    return saved("admin.digest", notice, digest_id=row.id)


@blueprint.post(f"/digests/<{ID}:digest_id>/<any(pause, resume, cancel):action>")
@requires("digests:send")
def change_digest(digest_id: int, action: str):
    row = load_digest(digest_id)
    if action == "resume" and (asked := step_up_response()) is not None:
        return asked
    try:
        if action == "pause":
            pause_digest(row)
        elif action == "resume":
            resume_digest(row)
        else:
            cancel_digest(row)
        audit(f"digest.{action}", "digest", row.id)
        db.session.commit()
    except DigestStateError:
        db.session.rollback()
        notice = _("This digest has already finished; nothing was changed.")
        return back_to("admin.digest", notice, "bad", digest_id=row.id)
    messages = {
        "pause": _("The digest is paused."),
        "resume": _("The digest is resumed."),
        "cancel": _("The digest is cancelled: nothing more goes out."),
    }
    return back_to("admin.digest", messages[action], digest_id=row.id)
