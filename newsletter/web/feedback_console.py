"""Console pages of the feedback loop: the suppression list (view, lift) and inbound mail
(the latest, and one message's headers and text).

Routes hang on the console's blueprint (``/admin``), so they share its login and helpers.
"""

from __future__ import annotations

from flask import abort, current_app, render_template
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..config import CONSOLE_PAGE_SIZE
from ..domain.feedback import readable_message
from ..domain.suppressions import SuppressionKeys, lift, suppression_entries
from ..extensions import db
from ..models import InboundMessage, Suppression
from .admin.console import ID, blueprint, int_arg, saved
from .auth import audit, requires, staff_required


def reason_label(reason: str) -> str:
    labels = {
        "hard_bounce": _("hard bounce"),
        "complaint": _("complaint"),
        "soft_bounce": _("soft bounce"),
        "delayed": _("delay notice"),
        "unsubscribe": _("mailto unsubscribe"),
        "unknown": _("unknown"),
        "pending": _("waiting"),
    }
    return labels.get(reason, reason)


@blueprint.get("/suppressions")
@staff_required
def suppressions():
    page = int_arg("page")
    total = db.session.scalar(select(func.count(Suppression.id))) or 0
    entries = suppression_entries(
        SuppressionKeys.from_config(current_app.config),
        CONSOLE_PAGE_SIZE,
        (page - 1) * CONSOLE_PAGE_SIZE,
    )
    recent = db.session.scalars(
        select(InboundMessage).order_by(InboundMessage.id.desc()).limit(CONSOLE_PAGE_SIZE)
    ).all()
    return render_template(
        "admin/suppressions.html",
        entries=entries,
        total=total,
        page=page,
        pages=max(1, -(-total // CONSOLE_PAGE_SIZE)),
        inbound=recent,
        reason_label=reason_label,
    )


@blueprint.post(f"/suppressions/<{ID}:suppression_id>/lift")
@requires("subscribers:write")
def lift_suppression(suppression_id: int):
    if not lift(suppression_id):
        abort(404)
    audit("suppression.lift", "suppression", suppression_id)
    notice = _("The address may be mailed again; it has to subscribe again itself.")
    return saved("admin.suppressions", notice)


@blueprint.get(f"/inbound/<{ID}:message_id>")
@requires("subscribers:read")
def inbound_message(message_id: int):
    """One inbound message: what it was and changed, and the copy kept of unknown mail, shown
    as text (the template escapes it; nothing in a message is rendered as HTML)."""
    row = db.session.get(InboundMessage, message_id)
    if row is None:
        abort(404)
    readable = readable_message(row.raw) if row.raw is not None else None
    return render_template(
        "admin/inbound_message.html",
        message=row,
        readable=readable,
        truncated=row.raw is not None and row.size > len(row.raw),
        reason_label=reason_label,
    )
