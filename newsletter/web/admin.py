"""The staff console (``/admin``): dashboard, subscribers, releases, digests.

Every view is ``staff_required``; every form carries the CSRF token (Flask-WTF checks it
globally, and by hand on the CSV import, which needs a larger body limit first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from ..config import (
    CONSOLE_PAGE_SIZE,
    CSV_IMPORT_MAX_BYTES,
    CSV_IMPORT_MAX_REQUEST_BYTES,
    DASHBOARD_DAYS,
    DEFAULT_TIMEZONE,
    DIGEST_PROGRESS_POLL_SECONDS,
    FEED_UPLOAD_MAX_BYTES,
    LANGUAGES,
)
from ..delivery.digest_previews import preview_message, queue_test_send
from ..delivery.imports import apply_subscriber_import
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.audit import address_hash
from ..domain.dashboard import DayMovement, daily_movements, latest_digests, status_counts
from ..domain.digests import (
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
from ..domain.feed_fetch import FeedFetchError, fetch_feed_url
from ..domain.feed_import import FeedError, import_feed
from ..domain.feedback import FeedbackCounts, feedback_by_digest, feedback_since
from ..domain.releases import (
    InvalidInput,
    create_release,
    list_releases,
    new_release_values,
    paginate,
    update_release,
)
from ..domain.requests import RELEASE_FIELDS
from ..domain.schedules import (
    create_schedule,
    schedule_as_dict,
    schedules_query,
    set_schedule_status,
)
from ..domain.subscriber_export import export_lines
from ..domain.subscriber_import import (
    ImportFileError,
    ImportPlan,
    ImportRow,
    decode_csv,
    plan_subscriber_import,
)
from ..domain.subscriber_search import STATUSES, SubscriberFilter, subscriber_page
from ..domain.subscriptions import InvalidField
from ..domain.suppressions import SuppressionKeys
from ..extensions import csrf, db
from ..models import (
    Digest,
    DigestSchedule,
    DigestStatus,
    Release,
    ScheduleStatus,
    Subscriber,
    utcnow,
)
from ..scheduling.triggers import next_fire_time
from .auth import audit, can, requires, staff_required
from .inputs import InputError, explain, is_json_request
from .two_factor_gate import step_up, step_up_response

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
# Ids fit a signed 64-bit column: a longer number in a URL is a 404, not a database error.
ID = "int(max=9223372036854775807)"

LANGUAGE_NAMES = {"fr": "Français", "en": "English"}


@blueprint.before_request
def refuse_json_bodies() -> None:
    """The console takes forms (scripts use /api/v1): a JSON body gets a JSON 415, not a page."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and is_json_request():
        raise InputError(
            415, "unsupported_media_type", _("This kind of content is not accepted here.")
        )


def status_label(status: str) -> str:
    labels = {
        "pending": _("pending"),
        "confirmed": _("confirmed"),
        "unsubscribed": _("unsubscribed"),
        "bounced": _("bounced"),
        "scheduled": _("scheduled"),
        "sending": _("sending"),
        "sent": _("sent"),
        "skipped": _("skipped"),
        "failed": _("failed"),
        "active": _("active"),
        "paused": _("paused"),
        "cancelled": _("cancelled"),
    }
    return labels.get(status, status)


def console_time(value: datetime | None) -> str:
    """Times are stored as naive UTC; the console says so rather than guessing a zone."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M") + " UTC"


def console_section() -> str:
    """The navigation entry the current page belongs to."""
    endpoint = request.endpoint or ""
    for word in ("subscriber", "release", "digest", "suppression"):
        if word in endpoint:
            return f"admin.{word}s"
    for word, section in STAFF_SECTIONS.items():
        if word in endpoint:
            return section
    return "admin.dashboard"


# The staff pages (issue 14) and the navigation entry each belongs to.
STAFF_SECTIONS = {
    "staff_admin.staff": "staff_admin.staff_list",
    "token": "staff_admin.tokens",
    "audit": "staff_admin.audit_log",
    "webhook": "staff_admin.webhooks_page",
    "two_factor": "staff_admin.two_factor",
}


@blueprint.context_processor
def console_helpers() -> dict[str, Any]:
    return {
        "console_section": console_section(),
        "import_max_kb": CSV_IMPORT_MAX_BYTES // 1024,
        "status_label": status_label,
        "console_time": console_time,
        "language_names": LANGUAGE_NAMES,
        "has_endpoint": lambda name: name in current_app.view_functions,
        "can": can,
    }


def int_arg(name: str, default: int = 1) -> int:
    """A whole number from 1 up (page numbers): anything else, 0 included, is ``default``."""
    value = request.args.get(name, "")
    number = int(value) if value.isdigit() and len(value) < 9 else 0
    return number if number >= 1 else default


def filter_from_args() -> SubscriberFilter:
    try:
        return SubscriberFilter(
            query=request.args.get("q", ""),
            status=request.args.get("status", ""),
            language=request.args.get("language", ""),
        )
    except InvalidField as exc:
        raise InputError(
            400, "invalid", _("Check the filters."), {exc.field: explain(exc)}
        ) from None


# --- Dashboard ----------------------------------------------------------------------------


def movement_chart(
    movements: Sequence[DayMovement], width: int = 720, height: int = 220
) -> dict[str, Any]:
    """Geometry of the dashboard's SVG line chart, computed here so the page needs no script."""
    left, right, top, bottom = 40, 10, 10, 30
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = max([1, *(m.confirmations for m in movements), *(m.departures for m in movements)])
    step = plot_width / max(1, len(movements) - 1)

    def points(values: list[int]) -> str:
        return " ".join(
            f"{left + index * step:.1f},{top + plot_height - value / peak * plot_height:.1f}"
            for index, value in enumerate(values)
        )

    ticks = sorted({0, peak // 2, peak}) if peak > 1 else [0, 1]
    last = len(movements) - 1
    labels = [
        {
            "x": left + index * step,
            "text": movement.day.strftime("%d/%m"),
            # The first and last labels sit inside the drawing instead of being cut in half.
            "anchor": "start" if index == 0 else "end" if index == last else "middle",
        }
        for index, movement in enumerate(movements)
        if (index % 15 == 0 and last - index >= 8) or index == last
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": top + plot_height,
        "right": left + plot_width,
        "confirmations": points([m.confirmations for m in movements]),
        "departures": points([m.departures for m in movements]),
        "ticks": [{"y": top + plot_height - t / peak * plot_height, "text": t} for t in ticks],
        "labels": labels,
        "total_confirmations": sum(m.confirmations for m in movements),
        "total_departures": sum(m.departures for m in movements),
    }


@blueprint.get("/")
@staff_required
def dashboard():
    movements = daily_movements(DASHBOARD_DAYS)
    return render_template(
        "admin/dashboard.html",
        counts=status_counts(),
        movements=movements,
        chart=movement_chart(movements),
        days=DASHBOARD_DAYS,
        digests=latest_digests(10),
        feedback=feedback_since(utcnow() - timedelta(days=DASHBOARD_DAYS)),
    )


# --- Subscribers --------------------------------------------------------------------------


@blueprint.get("/subscribers")
@requires("subscribers:read")
def subscribers():
    subscriber_filter = filter_from_args()
    page = subscriber_page(subscriber_filter, int_arg("page"), CONSOLE_PAGE_SIZE)
    filter_args = {
        key: value
        for key, value in (
            ("q", subscriber_filter.query),
            ("status", subscriber_filter.status),
            ("language", subscriber_filter.language),
        )
        if value
    }
    return render_template(
        "admin/subscribers.html",
        page=page,
        subscriber_filter=subscriber_filter,
        filter_args=filter_args,
        statuses=STATUSES,
        languages=LANGUAGES,
    )


@blueprint.get(f"/subscribers/<{ID}:subscriber_id>")
@requires("subscribers:read")
def subscriber(subscriber_id: int):
    row = db.session.get(Subscriber, subscriber_id)
    if row is None:
        abort(404)
    return render_template("admin/subscriber.html", subscriber=row)


def subscriber_filter_details(subscriber_filter: SubscriberFilter) -> dict[str, str]:
    """The filter of an export, for the audit log (what was exported, not who is in it).

    The search text is often an address: only its keyed hash is kept, as the log is never
    rewritten and an erasure could not take the address out of it again."""
    details = {
        name: value
        for name, value in (
            ("status", subscriber_filter.status),
            ("language", subscriber_filter.language),
        )
        if value
    }
    if subscriber_filter.query:
        details["query_hash"] = address_hash(
            subscriber_filter.query.casefold(), current_app.config["SECRET_KEY"]
        )
    return details


def commit_keeping_staff_loaded() -> None:
    """Commit before a streamed response: the stream outlives the view, and the staff member
    (read again by templates and Flask-Login) must not be left expired."""
    db.session.commit()
    if g.get("staff") is not None:
        db.session.refresh(g.staff)


@blueprint.get("/subscribers/export.csv")
@requires("subscribers:export")
@step_up
def export_subscribers():
    subscriber_filter = filter_from_args()

    def generate():
        yield "\ufeff"  # spreadsheets read the file as UTF-8 only with the BOM
        yield from export_lines(subscriber_filter)

    audit(
        "subscribers.export",
        "subscribers",
        details={"format": "csv", **subscriber_filter_details(subscriber_filter)},
    )
    commit_keeping_staff_loaded()
    filename = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def import_file_message(error: ImportFileError) -> str:
    details = error.details
    messages = {
        "binary": _("This is not a CSV file: it holds binary data."),
        "not_utf8": _("The file is not UTF-8 text. Save it as “CSV UTF-8” and try again."),
        "empty": _("The file is empty."),
        "not_csv": _("The file is not valid CSV (line %(line)s).", line=details.get("line")),
        "no_email_column": _("The first line must name the columns, one of them “email”."),
        "too_many_rows": _(
            "The file has more than %(max)s rows: split it into smaller files.",
            max=details.get("max"),
        ),
        "no_rows": _("The file names its columns but has no rows."),
        "too_large": _(
            "The file is larger than %(size)s kB: split it into smaller files.",
            size=CSV_IMPORT_MAX_BYTES // 1024,
        ),
        "no_file": _("Choose a CSV file to import."),
    }
    return messages.get(error.reason, error.reason)


def import_row_message(row: ImportRow) -> str:
    details = row.details
    messages = {
        "consent_recorded": _("Consent recorded: imported as confirmed."),
        "double_opt_in": _(
            "No recorded consent: imported as pending, gets the confirmation email."
        ),
        "already_listed": _(
            "Already in the list (%(status)s): left as it is.",
            status=status_label(str(details.get("status", ""))),
        ),
        "left": _("Left the newsletter: an import never subscribes them again."),
        "bounced": _("Bounced: an import never subscribes them again."),
        "suppressed": _(
            "On the suppression list (hard bounce or complaint): an import never adds it."
        ),
        "too_many_fields": _(
            "%(count)s fields where the first line names %(expected)s.",
            count=details.get("count"),
            expected=details.get("expected"),
        ),
        "email": _("Not a valid email address: %(detail)s", detail=details.get("detail")),
        "field": _(
            "The column %(field)s is not valid: %(detail)s",
            field=details.get("field"),
            detail=details.get("detail"),
        ),
        "duplicate": _("Same address as line %(line)s: skipped.", line=details.get("line")),
    }
    return messages.get(row.reason, row.reason)


def read_import_text() -> str:
    """The CSV's text, from the uploaded file (preview) or the re-posted text (import)."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        data = upload.stream.read(CSV_IMPORT_MAX_BYTES + 1)
    else:
        data = request.form.get("csv_text", "").encode("utf-8")
        if not data:
            raise ImportFileError("no_file")
    if len(data) > CSV_IMPORT_MAX_BYTES:
        raise ImportFileError("too_large")
    return decode_csv(data)


@blueprint.route("/subscribers/import", methods=["GET", "POST"])
@csrf.exempt  # checked below, once the larger body limit of an import is in place
@requires("subscribers:import")
def import_subscribers():
    language = request.args.get("language") or current_app.config["BABEL_DEFAULT_LOCALE"]
    if request.method == "GET":
        return render_template("admin/import.html", plan=None, default_language=language)
    request.max_content_length = CSV_IMPORT_MAX_REQUEST_BYTES
    request.max_form_memory_size = CSV_IMPORT_MAX_REQUEST_BYTES
    csrf.protect()
    language = request.form.get("default_language", language)
    step = request.form.get("step", "preview")
    try:
        if language not in LANGUAGES:
            raise InvalidField("default_language", _("Choose a language."))
        text = read_import_text()
        plan = plan_subscriber_import(text, language, _suppression_keys())
    except ImportFileError as exc:
        message = import_file_message(exc)
        return render_template(
            "admin/import.html", plan=None, default_language=language, error=message
        ), 413 if exc.reason == "too_large" else 422
    except InvalidField as exc:
        return render_template(
            "admin/import.html", plan=None, default_language=language, error=str(exc)
        ), 422
    if step != "import":
        return render_template(
            "admin/import.html",
            plan=plan,
            csv_text=text,
            default_language=language,
            row_message=import_row_message,
        )
    return apply_import(plan, text, language)


def _suppression_keys() -> SuppressionKeys:
    return SuppressionKeys.from_config(current_app.config)


def apply_import(plan: ImportPlan, text: str, language: str):
    try:
        result = apply_subscriber_import(plan)
        audit(
            "subscribers.import",
            "subscribers",
            details={
                "confirmed": result.confirmed,
                "pending": result.pending,
                "rows": len(plan.rows),
                "language": language,
            },
        )
        db.session.commit()
    except IntegrityError:
        # Someone subscribed one of these addresses meanwhile: nothing of this import is kept.
        db.session.rollback()
        message = _("The list changed while importing; nothing was imported. Check the preview.")
        return render_template(
            "admin/import.html",
            plan=plan_subscriber_import(text, language, _suppression_keys()),
            csv_text=text,
            default_language=language,
            row_message=import_row_message,
            error=message,
        ), 409
    return render_template(
        "admin/import.html",
        plan=plan,
        result=result,
        default_language=language,
        row_message=import_row_message,
    )


@blueprint.get("/subscribers/import/template.csv")
@requires("subscribers:import")
def import_template():
    sample = "email,name,language,consent_at,consent_ip,consent_page\r\n"
    sample += "reader@example.org,Reader,fr,,,\r\n"
    sample += (
        "colleague@example.org,Colleague,en,2024-05-31T14:00:00Z,192.0.2.1,https://example.org/\r\n"
    )
    return Response(
        sample,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="subscribers-template.csv"'},
    )


# --- Times typed in the console ----------------------------------------------------------


def local_time_to_iso(value: str, timezone: str, field: str) -> str:
    """A ``datetime-local`` value read in ``timezone``, as ISO 8601 with its UTC offset."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            {"timezone": _("Unknown time zone; use a name such as Europe/Brussels.")}
        ) from None
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput({field: _("Give a date and a time.")}) from None
    if naive.tzinfo is not None:
        raise InvalidInput({field: _("Give a date and a time.")})
    aware = naive.replace(tzinfo=zone)
    try:
        in_utc = aware.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
        raise InvalidInput({field: _("Give a date and a time.")}) from None
    if not 1970 <= in_utc.year <= 9999:
        raise InvalidInput({field: _("Give a date and a time.")})
    return aware.isoformat()


def utc_to_local_input(value: datetime | None, timezone: str) -> str:
    """Naive UTC as a ``datetime-local`` value in ``timezone``."""
    if value is None:
        return ""
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%dT%H:%M")


def zone_of_form(form: Mapping[str, str]) -> str:
    timezone = (form.get("timezone") or DEFAULT_TIMEZONE).strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            {"timezone": _("Unknown time zone; use a name such as Europe/Brussels.")}
        ) from None
    return timezone


@cache
def _sorted_time_zones() -> tuple[str, ...]:
    # Reading the zone database costs ~13 ms; it does not change while the process runs.
    return tuple(sorted(available_timezones()))


@blueprint.context_processor
def zone_names() -> dict[str, Any]:
    return {"time_zones": _sorted_time_zones(), "default_timezone": DEFAULT_TIMEZONE}


# --- Releases -----------------------------------------------------------------------------


@blueprint.get("/releases")
@requires("releases:read")
def releases():
    language = request.args.get("language", "")
    if language and language not in LANGUAGES:
        raise InputError(400, "invalid", _("Check the filters."), {"language": "fr, en"})
    page = list_releases(
        page=int_arg("page"), per_page=CONSOLE_PAGE_SIZE, language=language or None
    )
    return render_template(
        "admin/releases.html",
        page=page,
        language=language,
        languages=LANGUAGES,
        filter_args={"language": language} if language else {},
    )


def release_form_data(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The release fields of the form, the publication time read in its time zone, and the
    errors of those two fields (the others are checked by the releases domain)."""
    data: dict[str, Any] = {name: form.get(name, "") for name in RELEASE_FIELDS}
    errors: dict[str, str] = {}
    if data["published_at"]:
        try:
            data["published_at"] = local_time_to_iso(
                data["published_at"], zone_of_form(form), "published_at"
            )
        except InvalidInput as exc:
            errors.update(exc.fields)
            data["published_at"] = None
    return data, errors


def release_form_values(release: Release | None, timezone: str) -> dict[str, str]:
    if release is None:
        return {"language": str(get_locale() or "fr")[:2], "timezone": timezone}
    return {
        "title": release.title,
        "dateline": release.dateline or "",
        "summary": release.summary or "",
        "body": release.body_html or "",
        "url": release.url or "",
        "image_url": release.image_url or "",
        "video_url": release.video_url or "",
        "language": release.language,
        "published_at": utc_to_local_input(release.published_at, timezone),
        "timezone": timezone,
    }


def release_form(release: Release | None):
    """Create or edit a release; "preview" shows the sanitised body without saving."""
    if request.method == "GET":
        values = release_form_values(release, DEFAULT_TIMEZONE)
        return render_template("admin/release_form.html", release=release, values=values, errors={})
    values = {name: request.form.get(name, "") for name in (*RELEASE_FIELDS, "timezone")}
    action = request.form.get("action", "save")
    data, time_errors = release_form_data(request.form)
    try:
        if time_errors:
            new_release_values(data)  # gathers the other fields' errors too
            raise InvalidInput(time_errors)
        if action == "preview":
            cleaned = new_release_values(data)
            return render_template(
                "admin/release_form.html",
                release=release,
                values=values,
                errors={},
                preview=cleaned,
            )
        if not can("releases:write"):
            raise InputError(403, "forbidden", _("Your role does not allow this."))
        if release is None:
            release = create_release(data)
            audit("release.create", "release", release.id)
        else:
            update_release(release, data)
            audit("release.update", "release", release.id)
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        errors = {**exc.fields, **time_errors}
        return render_template(
            "admin/release_form.html", release=release, values=values, errors=errors
        ), 422
    flash(_("The release is saved."), "ok")
    return redirect(url_for("admin.edit_release", release_id=release.id), 303)


@blueprint.route("/releases/new", methods=["GET", "POST"])
@requires("releases:write")
def new_release():
    return release_form(None)


@blueprint.route(f"/releases/<{ID}:release_id>", methods=["GET", "POST"])
@requires("releases:read")
def edit_release(release_id: int):
    release = db.session.get(Release, release_id)
    if release is None:
        abort(404)
    return release_form(release)


@blueprint.post("/releases/import")
@csrf.exempt  # checked below, once the larger body limit of an upload is in place
@requires("releases:write")
def import_releases():
    request.max_content_length = FEED_UPLOAD_MAX_BYTES + 64 * 1024
    request.max_form_memory_size = FEED_UPLOAD_MAX_BYTES + 64 * 1024
    csrf.protect()
    language = request.form.get("default_language", "fr")
    if language not in LANGUAGES:
        language = "fr"
    upload = request.files.get("file")
    url = (request.form.get("url") or "").strip()
    try:
        if upload is not None and upload.filename:
            data = upload.stream.read(FEED_UPLOAD_MAX_BYTES + 1)
            if len(data) > FEED_UPLOAD_MAX_BYTES:
                raise FeedError(_("The file is too large."))
            source = upload.filename
        elif url:
            # Only web addresses: a path typed here must never read the server's own files.
            if urlsplit(url).scheme not in ("http", "https"):
                raise FeedError(_("Give an http or https address."))
            try:
                data = fetch_feed_url(url, allowed_hosts=current_app.config["FEED_ALLOWED_HOSTS"])
            except FeedFetchError:
                # One answer for refused, unreachable, slow or too big: no port scanning.
                raise FeedError(_("This address could not be fetched.")) from None
            source = url
        else:
            raise FeedError(_("Choose a feed file or give its address."))
        report = import_feed(data, default_language=language)
        audit(
            "releases.import",
            "releases",
            details={
                "source": source,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
            },
        )
        db.session.commit()
    except FeedError as exc:
        db.session.rollback()
        return render_template("admin/feed_report.html", report=None, error=str(exc)), 422
    return render_template("admin/feed_report.html", report=report, source=source, error=None)


# --- Digests ------------------------------------------------------------------------------


def digest_summary(digest: Digest, progress: Progress) -> str:
    """One sentence on where a digest stands, in the staff member's language."""
    if digest.status == DigestStatus.SCHEDULED:
        text = _("Scheduled for %(time)s.", time=console_time(digest.send_at))
    elif digest.status == DigestStatus.SENDING:
        text = _(
            "Sending: %(done)s of %(recipients)s done (%(sent)s sent, %(failed)s failed).",
            done=progress.done,
            recipients=progress.recipients,
            sent=progress.sent,
            failed=progress.failed,
        )
    elif digest.status == DigestStatus.SENT:
        text = _(
            "Done: %(sent)s sent, %(failed)s failed, out of %(recipients)s.",
            sent=progress.sent,
            failed=progress.failed,
            recipients=progress.recipients,
        )
    elif digest.status == DigestStatus.SKIPPED:
        text = _("Skipped: there was nothing new to send.")
    elif digest.failure_reason == "cancelled":
        text = _("Cancelled: %(sent)s had been sent.", sent=progress.sent)
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


@blueprint.get("/digests")
@requires("digests:read")
def digests():
    history = paginate(digests_query(), page=int_arg("page"), per_page=CONSOLE_PAGE_SIZE)
    schedules = db.session.scalars(schedules_query()).all()
    return render_template(
        "admin/digests.html",
        page=history,
        schedules=[schedule_as_dict(schedule, next_fire_time(schedule)) for schedule in schedules],
        languages=LANGUAGES,
        values={"language": str(get_locale() or "fr")[:2], "timezone": DEFAULT_TIMEZONE},
        errors={},
        schedule_values={"timezone": DEFAULT_TIMEZONE, "every": "week", "at": "08:00"},
        schedule_errors={},
    )


def render_digests_with_errors(**overrides: Any):
    context: dict[str, Any] = {
        "page": paginate(digests_query(), page=1, per_page=CONSOLE_PAGE_SIZE),
        "schedules": [
            schedule_as_dict(s, next_fire_time(s))
            for s in db.session.scalars(schedules_query()).all()
        ],
        "languages": LANGUAGES,
        "values": {"timezone": DEFAULT_TIMEZONE},
        "errors": {},
        "schedule_values": {"timezone": DEFAULT_TIMEZONE, "every": "week", "at": "08:00"},
        "schedule_errors": {},
    }
    context.update(overrides)
    return render_template("admin/digests.html", **context), 422


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
        audit("digest.create", "digest", digest.id, {"language": digest.language})
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        return render_digests_with_errors(values=values, errors=exc.fields)
    flash(_("The digest is scheduled."), "ok")
    return redirect(url_for("admin.digest", digest_id=digest.id), 303)


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
        audit("schedule.create", "schedule", schedule.id, {"cron": schedule.cron})
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        return render_digests_with_errors(schedule_values=values, schedule_errors=exc.fields)
    flash(_("The recurring digest is saved."), "ok")
    return redirect(url_for("admin.digests"), 303)


@blueprint.post(f"/digests/schedules/<{ID}:schedule_id>/<any(pause, resume, cancel):action>")
@requires("digests:send")
def change_schedule(schedule_id: int, action: str):
    schedule = db.session.get(DigestSchedule, schedule_id)
    if schedule is None:
        abort(404)
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
    return redirect(url_for("admin.digests"), 303)


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
    try:
        address = normalise_address(request.form.get("email"))
    except InvalidAddress as exc:
        return render_template(
            "admin/digest.html",
            digest=row,
            progress=progress_json(row),
            poll_seconds=DIGEST_PROGRESS_POLL_SECONDS,
            test_email=request.form.get("email", ""),
            test_error=explain(exc),
        ), 422
    queue_test_send(row, address.email)
    # The address by keyed hash only: the log is never rewritten, an erasure could
    # not take it out again.
    audit(
        "digest.test_send",
        "digest",
        row.id,
        {"to_hash": address_hash(address.key, current_app.config["SECRET_KEY"])},
    )
    db.session.commit()
    flash(_("A test copy is on its way to %(email)s.", email=address.email), "ok")
    return redirect(url_for("admin.digest", digest_id=row.id), 303)


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
        flash(_("This digest has already finished; nothing was changed."), "bad")
        return redirect(url_for("admin.digest", digest_id=row.id), 303)
    messages = {
        "pause": _("The digest is paused."),
        "resume": _("The digest is resumed."),
        "cancel": _("The digest is cancelled: nothing more goes out."),
    }
    flash(messages[action], "ok")
    return redirect(url_for("admin.digest", digest_id=row.id), 303)


def init_app(app: Flask) -> None:
    """Register the console; the login page (``accounts.login``) lives with accounts."""
    from . import feedback_console  # noqa: F401 - adds the feedback loop's pages (issue 12)

    app.register_blueprint(blueprint)
