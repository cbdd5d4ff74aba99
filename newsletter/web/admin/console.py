"""What every console page shares: the two blueprints under ``/admin``, the words and times
templates show, the navigation, page numbers and streamed downloads.

Every view is ``staff_required`` (or names its permission with ``requires``); every form
carries the CSRF token (Flask-WTF checks it globally, and by hand on uploads, which need a
larger body limit first).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from ...config import CSV_IMPORT_MAX_BYTES, MAX_ROW_ID
from ...domain.staff import StaffError
from ...extensions import db
from ..auth import can
from ..inputs import InputError, is_json_request

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
# The staff pages (issue 14) keep their own endpoint names (``staff_admin.*``) under /admin.
staff_blueprint = Blueprint("staff_admin", __name__, url_prefix="/admin")
# Ids fit a signed 64-bit column: a longer number in a URL is a 404, not a database error.
ID = f"int(max={MAX_ROW_ID})"

LANGUAGE_NAMES = {"fr": "Français", "en": "English"}

# The staff pages and the navigation entry each belongs to.
STAFF_SECTIONS = {
    "staff_admin.staff": "staff_admin.staff_list",
    "token": "staff_admin.tokens",
    "audit": "staff_admin.audit_log",
    "webhook": "staff_admin.webhooks_page",
    "two_factor": "staff_admin.two_factor",
}


def refuse_json_bodies() -> None:
    """The console takes forms (scripts use /api/v1): a JSON body gets a JSON 415, not a page."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and is_json_request():
        raise InputError(
            415, "unsupported_media_type", _("This kind of content is not accepted here.")
        )


def N_(word: str) -> str:  # noqa: N802 - the conventional marker Babel extracts
    return word


# The statuses of subscribers, digests and schedules, each its own English label: marked for
# the catalog here, translated when shown.
STATUS_WORDS = frozenset(
    (
        N_("pending"),
        N_("confirmed"),
        N_("unsubscribed"),
        N_("bounced"),
        N_("scheduled"),
        N_("sending"),
        N_("sent"),
        N_("skipped"),
        N_("failed"),
        N_("active"),
        N_("paused"),
        N_("cancelled"),
    )
)


def status_label(status: str) -> str:
    """A stored status (of a subscriber, digest or schedule) in the staff member's language."""
    return _(status) if status in STATUS_WORDS else status


def staff_error_message(error: StaffError) -> str:
    """Why the staff or subscriber change was refused, in the staff member's language."""
    messages = {
        "last_owner": _("There must stay at least one active owner."),
        "not_staff": _("This account is not staff."),
        "role": _("Choose a role."),
        "scope": _("Choose known permissions."),
        "already_staff": _("This address already has a staff account: log in instead."),
        "password": _("For an existing account, enter that account's password."),
        "self": _("You cannot disable your own account."),
        # Changes to a subscriber (subscribers:write).
        "language": _("Choose a language."),
        "status": _("Choose confirmed, unsubscribed or bounced."),
        "never_confirmed": _("This subscriber never confirmed: only they can give consent."),
        "already_inactive": _("This subscriber has left already: there is nothing to mark."),
    }
    return messages.get(error.reason, error.reason)


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


def console_helpers() -> dict[str, Any]:
    """What the console's layout and pages call (a context processor of each blueprint)."""
    return {
        "console_section": console_section(),
        "import_max_kb": CSV_IMPORT_MAX_BYTES // 1024,
        "status_label": status_label,
        "console_time": console_time,
        "language_names": LANGUAGE_NAMES,
        "has_endpoint": lambda name: name in current_app.view_functions,
        "can": can,
    }


def join_console(console_blueprint: Blueprint) -> None:
    """Give a blueprint under /admin the console's page helpers and its refusal of JSON."""
    console_blueprint.context_processor(console_helpers)
    console_blueprint.before_request(refuse_json_bodies)


join_console(blueprint)
join_console(staff_blueprint)


def int_arg(name: str, default: int = 1) -> int:
    """A whole number from 1 up (page numbers): anything else, 0 included, is ``default``."""
    value = request.args.get(name, "")
    number = int(value) if value.isdigit() and len(value) < 9 else 0
    return number if number >= 1 else default


def back_to(
    endpoint: str, notice: str | None = None, category: str = "ok", **values: Any
) -> Response:
    """A console form's answer: ``notice`` flashed for the next page, and a 303 to ``endpoint``."""
    if notice:
        flash(notice, category)
    return redirect(url_for(endpoint, **values), 303)


def saved(endpoint: str, notice: str | None = None, **values: Any) -> Response:
    """The end of a console form's change: commit it (with its audit entry), then ``back_to``."""
    db.session.commit()
    return back_to(endpoint, notice, **values)


def commit_keeping_staff_loaded() -> None:
    """Commit before a streamed response: the stream outlives the view, and the staff member
    (read again by templates and Flask-Login) must not be left expired."""
    db.session.commit()
    if g.get("staff") is not None:
        db.session.refresh(g.staff)


def streamed_download(lines: Iterable[str], mimetype: str, filename: str) -> Response:
    """An export as a file to save, streamed as it is read and never cached."""
    return Response(
        stream_with_context(lines),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
