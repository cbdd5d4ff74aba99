"""The account page: password and address changes, a copy of one's data, deletion."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ...delivery.accounts import (
    code_keys,
    queue_account_exists_notice,
    queue_email_changed,
    queue_password_changed,
    send_change_email_code,
)
from ...delivery.signing import app_signer
from ...domain import codes
from ...domain.accounts import (
    LoginState,
    account_data,
    authenticate,
    change_email,
    delete_account,
    find_user,
    read_account_link,
    set_password,
    spend_account_link,
)
from ...domain.addresses import InvalidAddress, normalise_address
from ...domain.passwords import PasswordRejected
from ...extensions import db, limiter
from ...models import User
from ..i18n import use_language_of
from ..inputs import InputError, invalid_fields, page_or_json, say
from ..sessions import start_session_clock
from .common import (
    _fresh_session,
    _go_to,
    _invalid_code_message,
    _invalid_link,
    _page,
    _payload,
    _weak_password,
    account_rate_limit,
    blueprint,
    password_policy,
)

# --- the account page ---------------------------------------------------------------------


def _me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _pending_email_change(user: User) -> str | None:
    row = codes.live_code(user, codes.CHANGE_EMAIL)
    return row.new_email if row is not None else None


def _account_page(status: int = 200, **context: Any):
    user = _me()
    context.setdefault("fields", {})
    context.setdefault("rules", [])
    return _page(
        "account.html",
        status,
        user=user,
        pending_email=_pending_email_change(user),
        **context,
    )


def _proves_password(user: User, password: object) -> bool:
    """The current password, checked with the same failure count and lock as a login."""
    if not isinstance(password, str) or not password:
        # No password given is a malformed request, not a guess: nothing to count or store.
        return False
    outcome = authenticate(user, password, client=request.remote_addr)
    db.session.commit()
    return outcome.state in (LoginState.OK, LoginState.UNVERIFIED)


def _refused(error: InputError):
    """The account page again with ``error``'s field messages; JSON clients get ``error``."""
    return page_or_json(error, lambda: _account_page(error.code or 400, fields=error.fields))


def _wrong_password(field: str):
    message = _("Your current password is not correct.")
    return _refused(InputError(400, "wrong_password", message, {field: message}))


def _password_proven(
    field: str, shown_at: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A change that needs the current password, sent as ``field``: without it the account
    page says so beside ``shown_at`` (``field`` by default); with it the view is called with
    the request's fields and the user."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def proven(**values: Any):
            payload = _payload()
            user = _me()
            if not _proves_password(user, payload.get(field)):
                return _wrong_password(shown_at or field)
            return view(payload, user, **values)

        return proven

    return decorate


@blueprint.get("/account")
@login_required
def account():
    return _account_page()


@blueprint.post("/account/password")
@login_required
@_password_proven("current_password")
def change_password(payload: dict[str, Any], user: User):
    try:
        set_password(user, payload.get("new_password"), policy=password_policy())
    except PasswordRejected as exc:
        db.session.rollback()
        return _weak_password(
            exc.rules, 400, lambda rules: _account_page(400, rules=rules), field="new_password"
        )
    queue_password_changed(user)
    db.session.commit()
    # Other sessions ended with the new version; this one carries on under it.
    _fresh_session()
    login_user(user)
    start_session_clock()
    notice = _("Your password was changed. Your other sessions were logged out.")
    return page_or_json({"status": "password_changed"}, lambda: _go_to("accounts.account", notice))


@blueprint.post("/account/email")
@login_required
@limiter.shared_limit(account_rate_limit, scope="change-email")
@_password_proven("password")
def change_email_request(payload: dict[str, Any], user: User):
    try:
        address = normalise_address(payload.get("new_email"))
    except InvalidAddress as exc:
        return _refused(invalid_fields({"new_email": say(exc)}))
    if address.key == user.email_key:
        message = _("This is already your address.")
        return _refused(InputError(422, "invalid", message, {"new_email": message}))
    owner = find_user(address)
    if owner is not None:
        # Same answer as for a free address; the address's owner is told instead.
        queue_account_exists_notice(owner)
    else:
        send_change_email_code(user, address)
    db.session.commit()
    notice = _(
        "We sent a code to %(email)s. Enter it below to confirm the change.", email=address.email
    )
    return page_or_json(({"status": "pending"}, 202), lambda: _go_to("accounts.account", notice))


def _email_is_now(user: User) -> str:
    return _("Your email address is now %(email)s.", email=user.email)


def _apply_email_change(user: User, new_email: str | None):
    """Move the account to ``new_email``; returns an error message or None."""
    if not new_email:
        return _invalid_code_message()
    old_email = user.email
    try:
        address = normalise_address(new_email)
    except InvalidAddress:
        return _invalid_code_message()
    if not change_email(user, address):
        return _("This address cannot be used for your account.")
    queue_email_changed(user, old_email)
    return None


@blueprint.post("/account/email/confirm")
@login_required
@limiter.shared_limit(account_rate_limit, scope="change-email")
def change_email_confirm():
    payload = _payload()
    user = _me()
    check = codes.check_code(user, codes.CHANGE_EMAIL, payload.get("code"), code_keys())
    error = (
        _apply_email_change(user, check.row.new_email)
        if check.ok and check.row
        else _invalid_code_message()
    )
    if error is not None:
        db.session.commit()  # the try counts
        return _refused(InputError(400, "invalid_code", error, {"code": error}))
    db.session.commit()
    return page_or_json(
        {"status": "email_changed", "email": user.email},
        lambda: _go_to("accounts.account", _email_is_now(user)),
    )


@blueprint.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def change_email_link(token: str):
    link = read_account_link(app_signer(), codes.CHANGE_EMAIL, token)
    if link.user is not None:
        use_language_of(link.user.language)
    if not link.ok or link.user is None or link.row is None:
        return _invalid_link(link.state.value, "change_email")
    if request.method == "GET":
        return _page("change_email_link.html", token=token, new_email=link.row.new_email)
    new_email = link.row.new_email
    if not spend_account_link(link):
        db.session.rollback()
        return _invalid_link("invalid", "change_email")
    error = _apply_email_change(link.user, new_email)
    if error is not None:
        db.session.rollback()
        return _invalid_link("invalid", "change_email")
    db.session.commit()
    target = "accounts.account" if current_user.is_authenticated else "accounts.login"
    return _go_to(target, _email_is_now(link.user))


@blueprint.get("/account/data")
@login_required
def download_data():
    response = jsonify(account_data(_me()))
    response.headers["Content-Disposition"] = 'attachment; filename="my-account.json"'
    return response


@blueprint.post("/account/delete")
@login_required
@_password_proven("password", "delete_password")
def delete(payload: dict[str, Any], user: User):
    delete_account(user)
    db.session.commit()
    logout_user()
    _fresh_session()
    return page_or_json({"status": "deleted"}, lambda: _page("deleted.html"))
