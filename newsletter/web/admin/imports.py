"""Importing subscribers from a CSV file: a preview of every row, then the import itself."""

from __future__ import annotations

from flask import Response, current_app, render_template, request
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from ...config import CSV_IMPORT_MAX_BYTES, CSV_IMPORT_MAX_REQUEST_BYTES, LANGUAGES
from ...delivery.imports import apply_subscriber_import
from ...domain.subscriber_import import (
    ImportFileError,
    ImportPlan,
    ImportRow,
    decode_csv,
    plan_subscriber_import,
)
from ...domain.subscriptions import InvalidField
from ...domain.suppressions import SuppressionKeys
from ...extensions import csrf, db
from ..auth import audit, requires
from .console import blueprint, status_label


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
