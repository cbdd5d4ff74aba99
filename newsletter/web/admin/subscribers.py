"""Subscribers in the console: the searchable list, one subscriber, the CSV export, and the
changes staff may make (language, status, erasure)."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...config import CONSOLE_PAGE_SIZE, LANGUAGES
from ...domain.audit import address_hash
from ...domain.staff import StaffError
from ...domain.subscriber_admin import change_subscriber, erase_subscriber
from ...domain.subscriber_export import export_lines
from ...domain.subscriber_search import STATUSES, SubscriberFilter, subscriber_page
from ...domain.subscriptions import InvalidField
from ...domain.suppressions import SuppressionKeys
from ...extensions import db
from ...models import Subscriber, utcnow
from ..auth import audit, requires
from ..inputs import InputError, say
from ..two_factor_gate import step_up
from .console import (
    ID,
    blueprint,
    commit_keeping_staff_loaded,
    int_arg,
    staff_blueprint,
    staff_error_message,
    streamed_download,
)


def filter_from_args() -> SubscriberFilter:
    try:
        return SubscriberFilter(
            query=request.args.get("q", ""),
            status=request.args.get("status", ""),
            language=request.args.get("language", ""),
        )
    except InvalidField as exc:
        raise InputError(
            400, "invalid", _("Check the filters."), {exc.field: say(exc)}
        ) from None


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
    return render_template(
        "admin/subscriber.html", subscriber=db.get_or_404(Subscriber, subscriber_id)
    )


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
    return streamed_download(generate(), "text/csv", f"subscribers-{utcnow():%Y%m%d-%H%M}.csv")


# --- Changes (issue 14: staff pages, ``staff_admin.*`` endpoints) -------------------------


@staff_blueprint.post(f"/subscribers/<{ID}:subscriber_id>/change")
@requires("subscribers:write")
def change_subscriber_view(subscriber_id: int):
    row = db.get_or_404(Subscriber, subscriber_id)
    try:
        changes = change_subscriber(
            row, language=request.form.get("language"), status=request.form.get("status")
        )
    except StaffError as exc:
        db.session.rollback()
        flash(staff_error_message(exc), "bad")
        return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id), 303)
    if changes:
        audit("subscriber.update", "subscriber", row.id, changes)
        db.session.commit()
        flash(_("The subscriber is updated."), "ok")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id), 303)


@staff_blueprint.post(f"/subscribers/<{ID}:subscriber_id>/erase")
@requires("subscribers:write")
def erase_subscriber_view(subscriber_id: int):
    row = db.get_or_404(Subscriber, subscriber_id)
    if request.form.get("confirm") != "erase":
        flash(_("Tick the box to confirm the erasure."), "bad")
        return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id), 303)
    details = erase_subscriber(
        row, current_app.config["SECRET_KEY"], SuppressionKeys.from_config(current_app.config)
    )
    audit("subscriber.erase", "subscriber", subscriber_id, details)
    db.session.commit()
    flash(_("The subscriber and their stored mail are erased."), "ok")
    return redirect(url_for("admin.subscribers"), 303)
