"""Password reset by emailed one-time code (or the link in the same email)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, session
from flask_babel import gettext as _
from flask_login import logout_user

from ...delivery.accounts import (
    code_keys,
    queue_password_changed,
    render_decoy_reset_email,
    send_reset_code,
)
from ...delivery.signing import app_signer
from ...domain import codes
from ...domain.accounts import (
    find_account_id,
    mark_email_verified,
    read_account_link,
    set_password,
    spend_account_link,
)
from ...domain.addresses import InvalidAddress, normalise_address
from ...domain.passwords import PasswordRejected, check_password_policy
from ...extensions import db, limiter
from ...models import User
from ..deferred import after_the_response, commit_after_the_response
from ..i18n import request_language, use_language_of
from ..inputs import InputError, page_or_json
from .common import (
    _address_or_error,
    _fresh_session,
    _go_to,
    _invalid_code_error,
    _invalid_code_message,
    _invalid_link,
    _page,
    _password_error,
    _payload,
    _rule_messages,
    _text,
    account_rate_limit,
    blueprint,
    password_policy,
    safe_next,
)

# --- password reset -----------------------------------------------------------------------


def _reset_request(payload: dict[str, Any]) -> str | None:
    """Send a code if the address has an account; the same outcome is shown either way."""
    address = _address_or_error(payload.get("email"))
    next_url = safe_next(payload.get("next"))
    user_id = find_account_id(address)
    language = request_language()
    db.session.rollback()  # the same statements so far for both: one lookup, no write

    def send() -> None:
        # After the response (issue 11): issuing the code, queueing the email and the commit
        # happen only for registered addresses, so they must not delay the answer.
        target = db.session.get(User, user_id) if user_id is not None else None
        if target is not None:
            send_reset_code(target, next_url=next_url)
        else:
            render_decoy_reset_email(language)

    after_the_response(send)
    session["reset_email"] = address.email
    return next_url


@blueprint.route("/account/reset", methods=["GET", "POST"])
@limiter.shared_limit(account_rate_limit, scope="send-code", methods=["POST"])
def reset_request():
    if request.method == "GET":
        next_url = safe_next(request.args.get("next"))
        return _page("reset_request.html", email="", next_url=next_url, fields={})
    payload = _payload()
    try:
        next_url = _reset_request(payload)
    except InputError as exc:
        error = exc
        return page_or_json(
            error,
            lambda: _page(
                "reset_request.html",
                error.code or 422,
                email=_text(payload, "email"),
                next_url=safe_next(payload.get("next")),
                fields=error.fields,
            ),
        )
    return page_or_json(
        ({"status": "pending"}, 202), lambda: _go_to("accounts.reset_confirm", next=next_url)
    )


@blueprint.post("/api/v1/account/password-reset")
@limiter.shared_limit(account_rate_limit, scope="send-code")
def api_password_reset():
    _reset_request(_payload())
    return jsonify(status="pending"), 202


@blueprint.post("/account/reset/resend")
@limiter.shared_limit(account_rate_limit, scope="send-code")
def reset_resend():
    payload = _payload()
    next_url = _reset_request(payload)
    notice = _(
        "If an account uses this address, we sent it a new code: only the newest code "
        "works. You can ask for a new code once a minute."
    )
    return page_or_json(
        ({"status": "pending"}, 202),
        lambda: _go_to("accounts.reset_confirm", notice, next=next_url),
    )


def _reset_confirm(payload: dict[str, Any]):
    """Check the code (or the emailed link), then the new password; returns (user, error)."""
    token = _text(payload, "token")
    password = payload.get("password")
    if token:
        link = read_account_link(app_signer(), codes.RESET_PASSWORD, token)
        if not link.ok or link.user is None:
            return None, ("invalid_link", [])
        user = link.user
        # The policy first: a weak password must not spend a good link.
        try:
            check_password_policy(password, email=user.email, policy=password_policy())
        except PasswordRejected as exc:
            return None, ("weak_password", exc.rules)
        if not spend_account_link(link):
            db.session.rollback()
            return None, ("invalid_link", [])
        set_password(user, password, policy=password_policy())
    else:
        email = _text(payload, "email")
        try:
            address = normalise_address(email)
        except InvalidAddress:
            return None, ("invalid_code", [])
        # The policy first: a weak password must not spend a good code.
        try:
            check_password_policy(password, email=address.email, policy=password_policy())
        except PasswordRejected as exc:
            return None, ("weak_password", exc.rules)
        user_id = find_account_id(address)
        check = codes.check_code_of(user_id, codes.RESET_PASSWORD, payload.get("code"), code_keys())
        user = db.session.get(User, user_id) if check.ok and user_id is not None else None
        if user is None:
            commit_after_the_response()  # the try counts (see verify)
            return None, ("invalid_code", [])
        set_password(user, password, policy=password_policy())
    # Receiving the code proved control of the address.
    mark_email_verified(user)
    queue_password_changed(user)
    db.session.commit()
    return user, None


@blueprint.route("/account/reset/confirm", methods=["GET", "POST"])
@limiter.shared_limit(account_rate_limit, scope="check-code", methods=["POST"])
def reset_confirm():
    if request.method == "GET":
        next_url = safe_next(request.args.get("next"))
        token = request.args.get("token", "")
        if token:
            link = read_account_link(app_signer(), codes.RESET_PASSWORD, token)
            if link.user is not None:
                use_language_of(link.user.language)
            if not link.ok:
                return _page("link_invalid.html", 400, state=link.state.value, kind="reset")
        return _page(
            "reset_confirm.html",
            email=session.get("reset_email", ""),
            token=token,
            next_url=next_url,
            error=None,
            rules=[],
        )
    return _reset_confirm_answer()


def _reset_confirm_answer():
    payload = _payload()
    next_url = safe_next(payload.get("next"))
    _user, error = _reset_confirm(payload)
    if error is not None:
        code, rules = error
        if code == "invalid_link":
            return _invalid_link("invalid", "reset")
        json_error = (
            _password_error(rules, 400) if code == "weak_password" else _invalid_code_error()
        )
        return page_or_json(
            json_error,
            lambda: _page(
                "reset_confirm.html",
                400,
                email=_text(payload, "email"),
                token=_text(payload, "token"),
                next_url=next_url,
                error=_invalid_code_message() if code == "invalid_code" else None,
                rules=_rule_messages(rules),
            ),
        )
    # Every session of the account ended with the new session version; this one too.
    logout_user()
    _fresh_session()
    body: dict[str, Any] = {"status": "password_changed"}
    if next_url:
        body["next"] = next_url
    notice = _("Your password was changed. Log in with your new password.")
    return page_or_json(body, lambda: _go_to("accounts.login", notice, next=next_url))


@blueprint.post("/api/v1/account/password-reset/confirm")
@limiter.shared_limit(account_rate_limit, scope="check-code")
def api_password_reset_confirm():
    return _reset_confirm_answer()
