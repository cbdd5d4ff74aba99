"""Registration and email verification: by code, by link, and asking for a new code."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...delivery.accounts import code_keys, queue_account_exists_notice, send_verification_code
from ...delivery.signing import app_signer
from ...domain import codes
from ...domain.accounts import (
    find_account_id,
    mark_email_verified,
    read_account_link,
    register_account,
    spend_account_link,
)
from ...domain.addresses import InvalidAddress, normalise_address
from ...domain.passwords import PasswordRejected
from ...domain.subscriptions import InvalidField, clean_language
from ...extensions import db, limiter
from ...models import User
from ..deferred import after_the_response, commit_after_the_response
from ..i18n import request_language, use_language_of
from ..inputs import InputError, invalid_fields, page_or_json, say
from ..public import subscribe_with_consent
from .common import (
    _address_or_error,
    _go_to,
    _invalid_code_error,
    _invalid_link,
    _page,
    _payload,
    _text,
    _weak_password,
    account_rate_limit,
    blueprint,
    password_policy,
)


def _verified_notice() -> str:
    return _("Your address is verified. You can log in.")


# --- registration -------------------------------------------------------------------------


def _register(payload: dict[str, Any]) -> None:
    """Create the account (or notify the owner of a taken address) and queue its emails."""
    address = _address_or_error(payload.get("email"))
    try:
        language = clean_language(payload.get("language"), request_language())
    except InvalidField as exc:
        raise invalid_fields({exc.field: say(exc)}) from None
    registration = register_account(
        address, payload.get("password"), language=language, policy=password_policy()
    )
    if registration.created:
        send_verification_code(registration.user, enforce_limits=False)
    else:
        queue_account_exists_notice(registration.user)
    if _truthy(payload.get("subscribe")):
        subscribe_with_consent(
            address, language=language, name=None, page=request.referrer, source="account"
        )
    db.session.commit()
    session["verify_email"] = address.email


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}


@blueprint.route("/account/register", methods=["GET", "POST"])
@limiter.shared_limit(account_rate_limit, scope="send-code", methods=["POST"])
def register():
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("accounts.account"))
        return _page("register.html", values={}, fields={}, rules=[])
    return _register_answer()


def _register_answer():
    payload = _payload()
    values = {k: payload.get(k) for k in ("email", "language", "subscribe")}
    try:
        _register(payload)
    except PasswordRejected as exc:
        db.session.rollback()
        return _weak_password(
            exc.rules,
            422,
            lambda rules: _page("register.html", 422, values=values, fields={}, rules=rules),
        )
    except InputError as exc:
        db.session.rollback()
        error = exc
        return page_or_json(
            error,
            lambda: _page(
                "register.html", error.code or 422, values=values, fields=error.fields, rules=[]
            ),
        )
    return page_or_json(({"status": "pending"}, 202), lambda: _go_to("accounts.verify"))


@blueprint.post("/api/v1/account/register")
@limiter.shared_limit(account_rate_limit, scope="send-code")
def api_register():
    return _register_answer()


# --- email verification -------------------------------------------------------------------


@blueprint.route("/account/verify", methods=["GET", "POST"])
@limiter.shared_limit(account_rate_limit, scope="check-code", methods=["POST"])
def verify():
    if request.method == "GET":
        return _page("verify.html", email=session.get("verify_email", ""), error=None)
    payload = _payload()
    email = _text(payload, "email")
    try:
        user_id = find_account_id(normalise_address(email))
    except InvalidAddress:
        user_id = None
    check = codes.check_code_of(user_id, codes.VERIFY_EMAIL, payload.get("code"), code_keys())
    user = db.session.get(User, user_id) if check.ok and user_id is not None else None
    if user is None:
        # The try counts even though the answer is "no"; committed after the response (see
        # commit_after_the_response) so a counted try cannot be timed against an unknown address.
        commit_after_the_response()
        error = _invalid_code_error()
        return page_or_json(
            error, lambda: _page("verify.html", 400, email=email, error=error.description)
        )
    mark_email_verified(user)
    db.session.commit()
    session.pop("verify_email", None)
    return page_or_json(
        {"status": "verified"}, lambda: _go_to("accounts.login", _verified_notice())
    )


@blueprint.post("/account/verify/resend")
@limiter.shared_limit(account_rate_limit, scope="send-code")
def verify_resend():
    payload = _payload()
    address = _address_or_error(payload.get("email"))
    user_id = find_account_id(address, pending_only=True)
    db.session.rollback()  # the same statements so far for both: one lookup, no write

    def send() -> None:
        # After the response (issue 11): issuing the code, queueing the email and the commit
        # happen only for accounts waiting for verification, so they must not delay the answer.
        target = db.session.get(User, user_id) if user_id is not None else None
        if target is not None and target.email_verified_at is None:
            send_verification_code(target)

    after_the_response(send)
    session["verify_email"] = address.email
    notice = _(
        "If an account with this address is waiting for verification, we sent it a new code."
    )
    return page_or_json(({"status": "pending"}, 202), lambda: _go_to("accounts.verify", notice))


@blueprint.route("/account/verify/<token>", methods=["GET", "POST"])
def verify_link(token: str):
    link = read_account_link(app_signer(), codes.VERIFY_EMAIL, token)
    if link.user is not None:
        use_language_of(link.user.language)
    if not link.ok or link.user is None:
        return _invalid_link(link.state.value, "verify")
    if request.method == "GET":
        # Mail scanners follow links: confirming takes a click on a button (a POST).
        return _page("verify_link.html", token=token)
    if not spend_account_link(link):
        db.session.rollback()
        return _invalid_link("invalid", "verify")
    mark_email_verified(link.user)
    db.session.commit()
    return _go_to("accounts.login", _verified_notice())
