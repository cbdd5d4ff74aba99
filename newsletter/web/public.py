"""Public pages: subscribe, confirm, unsubscribe (with RFC 8058 one-click), preferences."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from ..delivery.signing import app_signer
from ..delivery.subscriptions import queue_confirmation_email, queue_welcome_email
from ..domain.addresses import Address, InvalidAddress, normalise_address
from ..domain.subscriptions import (
    Consent,
    InvalidField,
    change_language,
    clean_language,
    confirm_subscription,
    confirmation_state,
    may_send_confirmation,
    preferences_token,
    subscribe,
    subscriber_for_expired_confirmation,
    subscriber_from_preferences_token,
    subscriber_from_unsubscribe_token,
    unsubscribe,
)
from ..domain.suppressions import SuppressionKeys
from ..domain.tokens import LinkState
from ..extensions import csrf, db, limiter
from .i18n import request_language, use_language_of
from .inputs import (
    InputError,
    invalid_fields,
    page_or_json,
    read_payload,
    say,
    text_field,
    wants_json,
)
from .security import is_allowed_origin

blueprint = Blueprint("public", __name__)

HONEYPOT_FIELD = "website"  # hidden from people; bots fill it in


def subscribe_rate_limit() -> str:
    return current_app.config["SUBSCRIBE_RATE_LIMIT"]


def subscribe_with_consent(
    address: Address, *, language: str, name: object, page: str | None, source: str
) -> None:
    """Record the subscription with this request's consent and queue its confirmation.

    Raises ``InvalidField`` for a refused name; the caller commits.
    """
    outcome = subscribe(
        address,
        language=language,
        name=name,
        consent=Consent(
            ip=request.remote_addr,
            page=page,
            user_agent=request.user_agent.string,
            source=source,
        ),
        suppression=SuppressionKeys.from_config(current_app.config),
    )
    if outcome.send_confirmation:
        queue_confirmation_email(outcome.subscriber)


def subscribe_from_payload(payload: dict[str, Any], *, source: str) -> None:
    """Validate, record and queue the confirmation; raises ``InputError`` on bad input."""
    page = text_field(payload, "page") or request.referrer
    try:
        address = normalise_address(payload.get("email"))
    except InvalidAddress as exc:
        raise invalid_fields({"email": say(exc)}) from None
    try:
        language = clean_language(payload.get("language"), request_language())
        subscribe_with_consent(
            address,
            language=language,
            name=payload.get("name"),
            page=page if isinstance(page, str) else None,
            source=source,
        )
    except InvalidField as exc:
        db.session.rollback()
        raise invalid_fields({exc.field: say(exc)}) from None
    db.session.commit()


def accepted_response():
    return page_or_json(
        ({"status": "pending"}, 202), lambda: (render_template("subscribe_done.html"), 202)
    )


@blueprint.get("/")
@blueprint.get("/subscribe")
def subscribe_page():
    return render_template("subscribe.html", values={}, fields={})


@blueprint.get("/subscribe/embed")
def subscribe_embed():
    return render_template("subscribe_embed.html")


@blueprint.post("/subscribe")
@csrf.exempt  # the site embeds this form cross-site; the Origin check below guards it
@limiter.shared_limit(subscribe_rate_limit, scope="subscribe")
def subscribe_submit():
    if not is_allowed_origin(request.headers.get("Origin")):
        raise InputError(403, "forbidden_origin", _("This form cannot be sent from that site."))
    payload = read_payload()
    if str(payload.get(HONEYPOT_FIELD) or "").strip():
        # A bot filled the invisible field: answer as usual, store nothing.
        return accepted_response()
    try:
        subscribe_from_payload(payload, source="api" if wants_json() else "form")
    except InputError as exc:
        error = exc
        values = {key: payload.get(key) for key in ("email", "name", "language")}
        return page_or_json(
            error,
            lambda: (
                render_template("subscribe.html", values=values, fields=error.fields),
                error.code,
            ),
        )
    return accepted_response()


@blueprint.route("/subscribe/confirm/<token>", methods=["GET", "POST"])
@csrf.exempt  # reached from an email with no session; the signed token is the proof
def confirm(token: str):
    """GET shows the link's state and one button; only the button's POST confirms (mail
    scanners fetch every link in a message, and must not subscribe anyone)."""
    if request.method == "GET":
        outcome = confirmation_state(app_signer(), token)
    else:
        outcome = confirm_subscription(app_signer(), token, ip=request.remote_addr)
    if outcome.subscriber is not None:
        use_language_of(outcome.subscriber.language)
    if request.method == "POST" and outcome.state == LinkState.OK and outcome.subscriber:
        queue_welcome_email(outcome.subscriber)
        db.session.commit()
    state = outcome.state.value
    if request.method == "GET" and outcome.state == LinkState.OK:
        state = "ask"
    status = 400 if outcome.state in (LinkState.EXPIRED, LinkState.INVALID) else 200
    if request.method == "POST" and wants_json():
        if status == 400:
            code = "expired_link" if outcome.state == LinkState.EXPIRED else "invalid_link"
            message = (
                _("This link has expired. We can send you a new one.")
                if outcome.state == LinkState.EXPIRED
                else _("This link is not valid. Subscribe again to receive a new link.")
            )
            raise InputError(400, code, message)
        return jsonify(status="confirmed")
    return render_template("confirm.html", state=state, token=token), status


@blueprint.post("/subscribe/confirm/<token>/renew")
@csrf.exempt  # the expired token itself proves the request came from the emailed link
@limiter.shared_limit(subscribe_rate_limit, scope="subscribe")
def renew_confirmation(token: str):
    subscriber = subscriber_for_expired_confirmation(app_signer(), token)
    if subscriber is not None:
        address = Address(email=subscriber.email, key=subscriber.email_key)
        if may_send_confirmation(address):
            queue_confirmation_email(subscriber)
            db.session.commit()
    # Same answer whatever happened: the link may have been forwarded.
    return render_template("subscribe_done.html"), 202


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"], endpoint="unsubscribe")
@csrf.exempt  # RFC 8058: one-click POSTs carry no cookie and no CSRF token; the token is proof
def unsubscribe_link(token: str):
    outcome = subscriber_from_unsubscribe_token(app_signer(), token)
    if outcome.state == LinkState.INVALID or outcome.subscriber is None:
        if request.method == "POST" and wants_json():
            raise InputError(400, "invalid_link", _("This unsubscribe link is not valid."))
        return render_template("unsubscribe.html", state="invalid", token=token), 400
    subscriber = outcome.subscriber
    use_language_of(subscriber.language)
    if request.method == "GET":
        # Never unsubscribe on GET: mail scanners follow links.
        state = "already_done" if outcome.state == LinkState.ALREADY_DONE else "ask"
        return render_template("unsubscribe.html", state=state, token=token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    unsubscribe(subscriber, method="one-click" if one_click else "link")
    db.session.commit()
    return page_or_json(
        {"status": "unsubscribed"},
        lambda: render_template("unsubscribe.html", state="done", token=token),
    )


@blueprint.route("/preferences/<token>", methods=["GET", "POST"])
@csrf.exempt  # reached from an email link with no session; the signed token is proof
def preferences(token: str):
    outcome = subscriber_from_preferences_token(app_signer(), token)
    if outcome.state != LinkState.OK or outcome.subscriber is None:
        return render_template("preferences.html", state="invalid", subscriber=None), 400
    subscriber = outcome.subscriber
    use_language_of(subscriber.language)
    message = None
    if request.method == "POST":
        payload = read_payload()
        if payload.get("action") == "leave":
            unsubscribe(subscriber, method="preferences")
            message = _("You have left the newsletter.")
        else:
            try:
                change_language(subscriber, payload.get("language"))
            except InvalidField as exc:
                raise InputError(422, "invalid", say(exc), {exc.field: say(exc)}) from None
            use_language_of(subscriber.language)
            message = _("Your preferences are saved.")
        db.session.commit()
    return render_template(
        "preferences.html",
        state="ok",
        subscriber=subscriber,
        message=message,
        token=preferences_token(app_signer(), subscriber),
    )
