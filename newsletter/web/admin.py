"""The staff console (``/admin``): dashboard, subscribers, releases, digests.

Every view is ``staff_required``; every form carries the CSRF token (Flask-WTF checks it
globally, and by hand on the CSV import, which needs a larger body limit first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    render_template,
    request,
    stream_with_context,
)
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from ..config import (
    CONSOLE_PAGE_SIZE,
    CSV_IMPORT_MAX_BYTES,
    CSV_IMPORT_MAX_REQUEST_BYTES,
    DASHBOARD_DAYS,
    LANGUAGES,
)
from ..delivery.imports import apply_subscriber_import
from ..domain.console import (
    STATUSES,
    DayMovement,
    ImportFileError,
    ImportPlan,
    ImportRow,
    SubscriberFilter,
    daily_movements,
    decode_csv,
    export_lines,
    latest_digests,
    plan_subscriber_import,
    status_counts,
    subscriber_page,
)
from ..domain.subscriptions import InvalidField
from ..extensions import csrf, db
from ..models import Subscriber, utcnow
from .auth import staff_required
from .inputs import InputError

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

LANGUAGE_NAMES = {"fr": "Français", "en": "English"}


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
    for word in ("subscriber", "release", "digest"):
        if word in endpoint:
            return f"admin.{word}s"
    return "admin.dashboard"


@blueprint.context_processor
def console_helpers() -> dict[str, Any]:
    return {
        "console_section": console_section(),
        "import_max_kb": CSV_IMPORT_MAX_BYTES // 1024,
        "status_label": status_label,
        "console_time": console_time,
        "language_names": LANGUAGE_NAMES,
        "has_endpoint": lambda name: name in current_app.view_functions,
    }


def int_arg(name: str, default: int = 1) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 9 else default


def filter_from_args() -> SubscriberFilter:
    try:
        return SubscriberFilter(
            query=request.args.get("q", ""),
            status=request.args.get("status", ""),
            language=request.args.get("language", ""),
        )
    except InvalidField as exc:
        raise InputError(400, "invalid", _("Check the filters."), {exc.field: str(exc)}) from None


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
    labels = [
        {"x": left + index * step, "text": movement.day.strftime("%d/%m")}
        for index, movement in enumerate(movements)
        if index % 15 == 0 or index == len(movements) - 1
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
    )


# --- Subscribers --------------------------------------------------------------------------


@blueprint.get("/subscribers")
@staff_required
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


@blueprint.get("/subscribers/<int:subscriber_id>")
@staff_required
def subscriber(subscriber_id: int):
    row = db.session.get(Subscriber, subscriber_id)
    if row is None:
        abort(404)
    return render_template("admin/subscriber.html", subscriber=row)


@blueprint.get("/subscribers/export.csv")
@staff_required
def export_subscribers():
    subscriber_filter = filter_from_args()

    def generate():
        yield "\ufeff"  # spreadsheets read the file as UTF-8 only with the BOM
        yield from export_lines(subscriber_filter)

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
@staff_required
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
        plan = plan_subscriber_import(text, language)
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


def apply_import(plan: ImportPlan, text: str, language: str):
    try:
        result = apply_subscriber_import(plan)
        db.session.commit()
    except IntegrityError:
        # Someone subscribed one of these addresses meanwhile: nothing of this import is kept.
        db.session.rollback()
        message = _("The list changed while importing; nothing was imported. Check the preview.")
        return render_template(
            "admin/import.html",
            plan=plan_subscriber_import(text, language),
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
@staff_required
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


def init_app(app: Flask) -> None:
    """Register the console; the login page (``accounts.login``) lives with accounts."""
    app.register_blueprint(blueprint)
