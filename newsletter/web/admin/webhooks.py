"""Outgoing webhooks in the console (issue 14: ``staff_admin.*`` endpoints): the endpoints,
a new one, enabling and disabling, and the latest deliveries."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request
from flask_babel import gettext as _

from ...config import WEBHOOK_EVENTS
from ...domain import webhooks
from ...domain.webhooks import WebhookError
from ...extensions import db
from ...models import WebhookEndpoint
from ..auth import audit, requires
from .console import ID, saved, staff_blueprint

WEBHOOK_LOG_SIZE = 50  # latest deliveries shown in the console


def webhook_error_message(error: WebhookError) -> str:
    messages = {
        "url": _("Give an http or https address."),
        "events": _("Choose at least one event."),
    }
    return messages.get(error.reason, error.reason)


def render_webhooks(status: int = 200, **extra: Any):
    context: dict[str, Any] = {
        "endpoints": webhooks.endpoints(),
        "deliveries": webhooks.recent_deliveries(limit=WEBHOOK_LOG_SIZE),
        "events": WEBHOOK_EVENTS,
        "max_failures": current_app.config["WEBHOOK_MAX_FAILURES"],
        "values": {},
        "errors": {},
    }
    context.update(extra)
    return render_template("admin/webhooks.html", **context), status


@staff_blueprint.get("/webhooks")
@requires("webhooks:manage")
def webhooks_page():
    return render_webhooks()


@staff_blueprint.post("/webhooks")
@requires("webhooks:manage")
def create_webhook():
    values = {"url": request.form.get("url", ""), "events": request.form.getlist("events")}
    try:
        endpoint = webhooks.create_endpoint(values["url"], values["events"])
    except WebhookError as exc:
        db.session.rollback()
        return render_webhooks(422, values=values, errors={exc.field: webhook_error_message(exc)})
    audit(
        "webhook.create", "webhook", endpoint.id, {"url": endpoint.url, "events": endpoint.events}
    )
    return saved("staff_admin.webhooks_page", _("The webhook is saved."))


@staff_blueprint.post(f"/webhooks/<{ID}:endpoint_id>/<any(enable, disable):action>")
@requires("webhooks:manage")
def change_webhook(endpoint_id: int, action: str):
    endpoint = db.get_or_404(WebhookEndpoint, endpoint_id)
    if action == "enable":
        webhooks.enable_endpoint(endpoint)
    else:
        webhooks.disable_endpoint(endpoint)
    audit(f"webhook.{action}", "webhook", endpoint.id)
    return saved("staff_admin.webhooks_page")
