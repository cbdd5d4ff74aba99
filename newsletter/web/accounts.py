"""Account pages and the ``/api/v1/account`` JSON routes.

Views parse input, call the domain (accounts, codes, passwords), queue mail through delivery,
commit, and map outcomes to pages or JSON. What a visitor sees never says whether an address
has an account: registering a taken address and asking a reset code for an unknown one answer
exactly like the ordinary case.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..config import MAX_PAGE_URL_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ..delivery.accounts import (
    code_keys,
    queue_account_exists_notice,
    queue_email_changed,
    queue_password_changed,
    render_decoy_reset_email,
    send_change_email_code,
    send_reset_code,
    send_verification_code,
)
from ..delivery.signing import app_signer
from ..delivery.subscriptions import queue_confirmation_email
from ..domain import codes
from ..domain.accounts import (
    LoginState,
    account_data,
    authenticate,
    change_email,
    delete_account,
    find_account_id,
    find_user,
    mark_email_verified,
    read_account_link,
    register_account,
    set_password,
    spend_account_link,
)
from ..domain.addresses import Address, InvalidAddress, normalise_address
from ..domain.passwords import BrokenRule, PasswordRejected, check_password_policy
from ..domain.subscriptions import Consent, InvalidField, clean_language, subscribe
from ..domain.suppressions import SuppressionKeys
from ..extensions import csrf, db, limiter
from ..models import User
from .deferred import after_the_response, commit_after_the_response
from .i18n import request_language, use_language_of
from .inputs import InputError, explain, is_json_request, read_payload, wants_json
from .sessions import end_user_sessions, start_session_clock

blueprint = Blueprint("accounts", __name__)
# Pages check the CSRF token themselves (``before_request`` below) so that the same routes can
# also answer JSON bodies, which a cross-site form cannot send.
csrf.exempt(blueprint)

FLASH = "account"  # flash category shown by account pages (Flask-Login's own notices are not)


def account_rate_limit() -> str:
    return current_app.config["ACCOUNT_RATE_LIMIT"]


def login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def failed_login(response: Response) -> bool:
    """Only failed logins count against an IP: a shared office IP is not locked by successes."""
    return response.status_code in (401, 403, 422)


def password_policy() -> str:
    return current_app.config.get("PASSWORD_POLICY") or "site"


# --- helpers ------------------------------------------------------------------------------


def safe_next(value: object) -> str | None:
    """A same-site path to go back to, or None: never an open redirect.

    Only absolute paths on this site: no scheme, no host, no ``//`` (protocol-relative), no
    backslash (browsers read ``/\\host`` as ``//host``), no control characters or spaces.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_PAGE_URL_LENGTH:
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(ch) <= 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _payload() -> dict[str, Any]:
    if request.path.startswith("/api/") and not is_json_request():
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")
    return read_payload(allow_form=not request.path.startswith("/api/"))


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    return value if isinstance(value, str) else ""


def _address_or_error(raw: object, field: str = "email") -> Address:
    try:
        return normalise_address(raw)
    except InvalidAddress as exc:
        raise InputError(
            422, "invalid", _("Check the highlighted fields."), {field: explain(exc)}
        ) from None


def _rule_messages(rules: list[BrokenRule]) -> list[str]:
    return [_(rule.message, **rule.params) for rule in rules]


def _password_error(rules: list[BrokenRule], status: int, field: str = "password"):
    """JSON: the contract's error shape plus ``rules``, the machine names of the broken rules."""
    messages = _rule_messages(rules)
    body = {
        "error": {
            "code": "weak_password",
            "message": _("Choose another password."),
            "fields": {field: " ".join(messages)},
            "rules": [rule.code for rule in rules],
        }
    }
    return jsonify(body), status


def _language_kept() -> str | None:
    return session.get("lang")


def _fresh_session() -> None:
    """Drop everything from the old session (fixation), keeping only the chosen language."""
    language = _language_kept()
    session.clear()
    if language:
        session["lang"] = language


def _policy_hint() -> dict[str, int | str]:
    policy = password_policy()
    return {"policy": policy, "min": PASSWORD_MIN_LENGTH[policy], "max": PASSWORD_MAX_LENGTH}


def _page(template: str, status: int = 200, **context: Any):
    return render_template(f"accounts/{template}", password_hint=_policy_hint(), **context), status


def _invalid_link(state: str, kind: str):
    """The invalid-link page; a JSON request gets the contract's error instead."""
    if wants_json():
        raise InputError(400, "invalid_link", _("This link is no longer valid."))
    return _page("link_invalid.html", 400, state=state, kind=kind)


def _invalid_code_message() -> str:
    # One message for wrong, expired, used, replaced and unknown-address: it reveals nothing.
    return _("This code is wrong or has expired. Check it, or ask for a new code.")


# --- request guards -----------------------------------------------------------------------


@blueprint.before_request
def check_csrf_on_pages() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not is_json_request():
        if request.path.startswith("/api/"):
            raise InputError(415, "unsupported_media_type", "Send the body as application/json.")
        csrf.protect()


@blueprint.after_request
def private_headers(response: Response) -> Response:
    # Codes and tokens sit in these pages' URLs and forms: never leak them through Referer,
    # and never let a shared cache keep an account page.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- registration -------------------------------------------------------------------------


def _register(payload: dict[str, Any]) -> None:
    """Create the account (or notify the owner of a taken address) and queue its emails."""
    address = _address_or_error(payload.get("email"))
    try:
        language = clean_language(payload.get("language"), request_language())
    except InvalidField as exc:
        raise InputError(
            422, "invalid", _("Check the highlighted fields."), {exc.field: explain(exc)}
        ) from None
    registration = register_account(
        address, payload.get("password"), language=language, policy=password_policy()
    )
    if registration.created:
        send_verification_code(registration.user, enforce_limits=False)
    else:
        queue_account_exists_notice(registration.user)
    if _truthy(payload.get("subscribe")):
        outcome = subscribe(
            address,
            language=language,
            name=None,
            consent=Consent(
                ip=request.remote_addr,
                page=request.referrer,
                user_agent=request.user_agent.string,
                source="account",
            ),
            suppression=SuppressionKeys.from_config(current_app.config),
        )
        if outcome.send_confirmation:
            queue_confirmation_email(outcome.subscriber)
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
    try:
        _register(payload)
    except PasswordRejected as exc:
        db.session.rollback()
        if wants_json():
            return _password_error(exc.rules, 422)
        values = {k: payload.get(k) for k in ("email", "language", "subscribe")}
        return _page(
            "register.html", 422, values=values, fields={}, rules=_rule_messages(exc.rules)
        )
    except InputError as exc:
        db.session.rollback()
        if wants_json():
            raise
        values = {k: payload.get(k) for k in ("email", "language", "subscribe")}
        return _page("register.html", exc.code or 422, values=values, fields=exc.fields, rules=[])
    if wants_json():
        return jsonify(status="pending"), 202
    return redirect(url_for("accounts.verify"), 303)


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
        if wants_json():
            raise InputError(
                400, "invalid_code", _invalid_code_message(), {"code": _invalid_code_message()}
            )
        return _page("verify.html", 400, email=email, error=_invalid_code_message())
    mark_email_verified(user)
    db.session.commit()
    session.pop("verify_email", None)
    if wants_json():
        return jsonify(status="verified")
    flash(_("Your address is verified. You can log in."), FLASH)
    return redirect(url_for("accounts.login"), 303)


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
    if wants_json():
        return jsonify(status="pending"), 202
    flash(
        _("If an account with this address is waiting for verification, we sent it a new code."),
        FLASH,
    )
    return redirect(url_for("accounts.verify"), 303)


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
    flash(_("Your address is verified. You can log in."), FLASH)
    return redirect(url_for("accounts.login"), 303)


# --- login and logout ---------------------------------------------------------------------


@blueprint.route("/account/login", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"], deduct_when=failed_login)
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return _page("login.html", email="", next_url=next_url, error=None)
    payload = _payload()
    next_url = safe_next(payload.get("next")) or next_url
    email = _text(payload, "email")
    try:
        user = find_user(normalise_address(email))
    except InvalidAddress:
        user = None
    outcome = authenticate(user, payload.get("password"), client=request.remote_addr)
    db.session.commit()  # failure counts, lock, or a refreshed hash
    if outcome.state == LoginState.FAILED or outcome.user is None:
        message = _(
            "The email address or password is incorrect. After several failed attempts, "
            "logging in is paused for a few minutes."
        )
        if wants_json():
            raise InputError(401, "invalid_credentials", message)
        return _page("login.html", 401, email=email, next_url=next_url, error=message)
    if outcome.state == LoginState.UNVERIFIED:
        send_verification_code(outcome.user)
        db.session.commit()
        session["verify_email"] = outcome.user.email
        message = _("Verify your address first: enter the code we emailed you.")
        if wants_json():
            raise InputError(403, "unverified", message)
        flash(message, FLASH)
        return redirect(url_for("accounts.verify"), 303)
    _fresh_session()
    login_user(outcome.user)
    start_session_clock()
    if wants_json():
        return jsonify(status="ok")
    return redirect(next_url or url_for("accounts.account"), 303)


@blueprint.post("/account/logout")
def logout():
    if current_user.is_authenticated:
        end_user_sessions(current_user._get_current_object())
        db.session.commit()
    logout_user()
    _fresh_session()
    if wants_json():
        return jsonify(status="logged_out")
    flash(_("You are logged out."), FLASH)
    return redirect(url_for("accounts.login"), 303)


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
        if wants_json():
            raise
        return _page(
            "reset_request.html",
            exc.code or 422,
            email=_text(payload, "email"),
            next_url=safe_next(payload.get("next")),
            fields=exc.fields,
        )
    if wants_json():
        return jsonify(status="pending"), 202
    return redirect(url_for("accounts.reset_confirm", next=next_url), 303)


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
    if wants_json():
        return jsonify(status="pending"), 202
    flash(
        _(
            "If an account uses this address, we sent it a new code: only the newest code "
            "works. You can ask for a new code once a minute."
        ),
        FLASH,
    )
    return redirect(url_for("accounts.reset_confirm", next=next_url), 303)


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
        if wants_json():
            if code == "weak_password":
                return _password_error(rules, 400)
            if code == "invalid_link":
                raise InputError(400, "invalid_link", _("This link is no longer valid."))
            raise InputError(
                400, "invalid_code", _invalid_code_message(), {"code": _invalid_code_message()}
            )
        if code == "invalid_link":
            return _page("link_invalid.html", 400, state="invalid", kind="reset")
        return _page(
            "reset_confirm.html",
            400,
            email=_text(payload, "email"),
            token=_text(payload, "token"),
            next_url=next_url,
            error=_invalid_code_message() if code == "invalid_code" else None,
            rules=_rule_messages(rules),
        )
    # Every session of the account ended with the new session version; this one too.
    logout_user()
    _fresh_session()
    if wants_json():
        body: dict[str, Any] = {"status": "password_changed"}
        if next_url:
            body["next"] = next_url
        return jsonify(body)
    flash(_("Your password was changed. Log in with your new password."), FLASH)
    return redirect(url_for("accounts.login", next=next_url), 303)


@blueprint.post("/api/v1/account/password-reset/confirm")
@limiter.shared_limit(account_rate_limit, scope="check-code")
def api_password_reset_confirm():
    return _reset_confirm_answer()


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


def _wrong_password(field: str):
    message = _("Your current password is not correct.")
    if wants_json():
        raise InputError(400, "wrong_password", message, {field: message})
    return _account_page(400, fields={field: message})


@blueprint.get("/account")
@login_required
def account():
    return _account_page()


@blueprint.post("/account/password")
@login_required
def change_password():
    payload = _payload()
    user = _me()
    if not _proves_password(user, payload.get("current_password")):
        return _wrong_password("current_password")
    try:
        set_password(user, payload.get("new_password"), policy=password_policy())
    except PasswordRejected as exc:
        db.session.rollback()
        if wants_json():
            return _password_error(exc.rules, 400, field="new_password")
        return _account_page(400, rules=_rule_messages(exc.rules))
    queue_password_changed(user)
    db.session.commit()
    # Other sessions ended with the new version; this one carries on under it.
    _fresh_session()
    login_user(user)
    start_session_clock()
    if wants_json():
        return jsonify(status="password_changed")
    flash(_("Your password was changed. Your other sessions were logged out."), FLASH)
    return redirect(url_for("accounts.account"), 303)


@blueprint.post("/account/email")
@login_required
@limiter.shared_limit(account_rate_limit, scope="change-email")
def change_email_request():
    payload = _payload()
    user = _me()
    if not _proves_password(user, payload.get("password")):
        return _wrong_password("password")
    try:
        address = normalise_address(payload.get("new_email"))
    except InvalidAddress as exc:
        if wants_json():
            raise InputError(
                422, "invalid", _("Check the highlighted fields."), {"new_email": explain(exc)}
            ) from None
        return _account_page(422, fields={"new_email": explain(exc)})
    if address.key == user.email_key:
        message = _("This is already your address.")
        if wants_json():
            raise InputError(422, "invalid", message, {"new_email": message})
        return _account_page(422, fields={"new_email": message})
    owner = find_user(address)
    if owner is not None:
        # Same answer as for a free address; the address's owner is told instead.
        queue_account_exists_notice(owner)
    else:
        send_change_email_code(user, address)
    db.session.commit()
    if wants_json():
        return jsonify(status="pending"), 202
    flash(
        _(
            "We sent a code to %(email)s. Enter it below to confirm the change.",
            email=address.email,
        ),
        FLASH,
    )
    return redirect(url_for("accounts.account"), 303)


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
        if wants_json():
            raise InputError(400, "invalid_code", error, {"code": error})
        return _account_page(400, fields={"code": error})
    db.session.commit()
    if wants_json():
        return jsonify(status="email_changed", email=user.email)
    flash(_("Your email address is now %(email)s.", email=user.email), FLASH)
    return redirect(url_for("accounts.account"), 303)


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
    flash(_("Your email address is now %(email)s.", email=link.user.email), FLASH)
    target = "accounts.account" if current_user.is_authenticated else "accounts.login"
    return redirect(url_for(target), 303)


@blueprint.get("/account/data")
@login_required
def download_data():
    response = jsonify(account_data(_me()))
    response.headers["Content-Disposition"] = 'attachment; filename="my-account.json"'
    return response


@blueprint.post("/account/delete")
@login_required
def delete():
    payload = _payload()
    user = _me()
    if not _proves_password(user, payload.get("password")):
        return _wrong_password("delete_password")
    delete_account(user)
    db.session.commit()
    logout_user()
    _fresh_session()
    if wants_json():
        return jsonify(status="deleted")
    return _page("deleted.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
