"""Public JSON API (``/api/v1``): subscriptions. Staff routes live in ``api_staff``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..extensions import csrf, limiter
from .inputs import InputError, is_json_request, read_payload
from .public import HONEYPOT_FIELD, subscribe_from_payload, subscribe_rate_limit

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
# The API is for scripts and the site's JavaScript: JSON bodies only, which a cross-site form
# cannot send, and bearer tokens for staff. No cookie-bound CSRF token is needed.
csrf.exempt(blueprint)


def require_json() -> None:
    if request.method in ("POST", "PUT", "PATCH") and not is_json_request():
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")


@blueprint.post("/subscriptions")
@limiter.shared_limit(subscribe_rate_limit, scope="subscribe")
def create_subscription():
    require_json()
    payload = read_payload(allow_form=False)
    if str(payload.get(HONEYPOT_FIELD) or "").strip():
        return jsonify(status="pending"), 202
    subscribe_from_payload(payload, source="api")
    return jsonify(status="pending"), 202
