"""Provider webhooks: ``POST /api/v1/webhooks/ses`` (SNS, signature verified) and
``POST /api/v1/webhooks/postmark`` (shared token). A bad signature or token is a 4xx and
changes nothing. Exempt from CSRF (machines post here); errors in the API's JSON shape."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from ..extensions import csrf
from ..inbound.sns import SnsError, SnsVerifier, fetch_url
from ..inbound.webhooks import postmark_classifications, record_webhook, ses_classifications
from .inputs import InputError

blueprint = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")
csrf.exempt(blueprint)


def _json_body() -> dict[str, Any]:
    # SNS posts JSON as text/plain: the body is read whatever its declared type.
    try:
        data = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise InputError(400, "malformed_json", "The request body must be a JSON object.")
    return data


def sns_verifier() -> SnsVerifier:
    """One verifier (and certificate cache) per app; ``SNS_FETCH`` replaces the fetcher."""
    config = current_app.config
    cache = current_app.extensions.setdefault("newsletter.sns_verifiers", {})
    pattern = config["SNS_ALLOWED_URL"]
    verifier = cache.get(pattern)
    if verifier is None:
        verifier = cache[pattern] = SnsVerifier(pattern, config.get("SNS_FETCH") or fetch_url)
    return verifier


@blueprint.post("/ses")
def ses():
    message = _json_body()
    topics = current_app.config.get("SES_TOPIC_ARNS") or []
    if not topics:
        raise InputError(403, "not_configured", "No SNS topic is allowed (SES_TOPIC_ARNS).")
    if message.get("TopicArn") not in topics:
        raise InputError(403, "topic_not_allowed", "This SNS topic is not allowed.")
    verifier = sns_verifier()
    try:
        verifier.verify(message)
    except SnsError as exc:
        raise InputError(403, "bad_signature", f"Not a genuine SNS message: {exc}.") from None
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        url = message.get("SubscribeURL")
        if not verifier.allowed_url(url):
            raise InputError(400, "bad_subscribe_url", "SubscribeURL is not an SNS address.")
        try:
            verifier.fetch(str(url))
        except OSError:
            raise InputError(
                409, "confirmation_failed", "The subscription could not be confirmed; resend."
            ) from None
        return jsonify(status="confirmed")
    if kind != "Notification":
        return jsonify(status="ignored")
    try:
        notification = json.loads(message.get("Message") or "null")
    except (ValueError, TypeError, RecursionError):
        notification = None
    if not isinstance(notification, dict):
        notification = {"unparsed": str(message.get("Message"))[:2000]}
    count = record_webhook("ses", notification, ses_classifications(notification))
    return jsonify(status="recorded", events=count)


def _postmark_token_ok(expected: str) -> bool:
    given = request.headers.get("X-Postmark-Webhook-Token", "")
    if not given and request.authorization is not None:
        given = request.authorization.password or ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@blueprint.post("/postmark")
def postmark():
    expected = current_app.config.get("POSTMARK_WEBHOOK_TOKEN") or ""
    if not expected:
        raise InputError(403, "not_configured", "Postmark webhooks are not configured.")
    if not _postmark_token_ok(expected):
        raise InputError(401, "bad_token", "Missing or wrong webhook token.")
    event = _json_body()
    count = record_webhook("postmark", event, postmark_classifications(event))
    return jsonify(status="recorded", events=count)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
