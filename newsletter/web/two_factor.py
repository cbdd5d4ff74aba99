"""Two-factor login for staff, as a step of its own after the password.

The login view (``web.accounts``) is not changed: when a staff member who uses TOTP logs in,
Flask-Login's ``user_logged_in`` signal marks the session "second factor pending", and a
``before_request`` gate keeps every staff and account page behind ``/account/2fa`` until a
code (or a recovery code) is given. A wrong code, at login or on the enrolment page, counts
toward the login throttle. Exports and sends to the whole list ask for a code again once the
last one is older than ``STAFF_STEP_UP_SECONDS`` (``step_up``).
"""

from __future__ import annotations

import time
from typing import Any

import segno
from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, user_logged_in

from ..domain import audit as audit_domain
from ..domain import login_throttle, two_factor
from ..domain.staff import role_of
from ..extensions import db, limiter
from ..models import User
from . import admin
from .accounts import failed_login, login_rate_limit, safe_next
from .auth import audit, requires
from .inputs import InputError, wants_json
from .two_factor_gate import ENROL, PASSED_AT, PENDING

blueprint = Blueprint("two_factor", __name__)
# Only the console's helpers are needed by the setup page (it uses the console layout).
blueprint.context_processor(admin.console_helpers)
# Its pages take forms, like the console: a JSON body gets the JSON 415, never a page.
blueprint.before_request(admin.refuse_json_bodies)


GATED_BLUEPRINTS = ("admin", "staff_admin", "api_staff", "accounts")
OPEN_ENDPOINTS = (
    "two_factor.verify",
    "two_factor.setup",
    "accounts.logout",
    "accounts.login",
    "static",
)


def code_keys() -> list[str]:
    config = current_app.config
    return [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]


def on_login(_app: Flask, user: User, **_extra: Any) -> None:
    """After a good password: ask for the second factor, or for enrolment when required."""
    for key in (PENDING, ENROL, PASSED_AT):
        session.pop(key, None)
    if not getattr(user, "is_staff", False) or role_of(user) is None:
        return
    if two_factor.is_enrolled(user):
        session[PENDING] = True
    elif two_factor.must_enrol(user, current_app.config["STAFF_2FA"]):
        session[ENROL] = True


def gate() -> Any:
    """Keep staff and account pages behind the second factor while it is pending."""
    # The blueprint first: loading ``current_user`` on a public page would let Flask-Login's
    # session protection rewrite the visitor's session (a Set-Cookie on a shared page).
    if request.blueprint not in GATED_BLUEPRINTS or request.endpoint in OPEN_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return None
    if request.endpoint == "staff_admin.accept_invitation_page":
        return None
    if session.get(PENDING):
        if wants_json():
            raise InputError(401, "two_factor_required", _("Enter your two-factor code first."))
        return redirect(url_for("two_factor.verify", next=request.full_path.rstrip("?")))
    if session.get(ENROL):
        if wants_json():
            raise InputError(
                401, "two_factor_enrolment_required", _("Set up two-factor login first.")
            )
        return redirect(url_for("two_factor.setup"))
    return None


def throttled_message() -> str:
    return _("Too many wrong codes: wait a moment before trying again.")


def code_may_be_tried(user: User, actor: audit_domain.Actor, **details: Any) -> bool:
    """A code takes a turn at the login throttle before it is checked, like a password; a
    refused turn is written to the audit log (committed). Login and enrolment codes alike."""
    if login_throttle.reserve_attempt(user.id, actor.ip):
        return True
    audit_domain.record(actor, "staff.2fa_failed", "user", user.id, {"throttled": True, **details})
    db.session.commit()
    return False


@blueprint.route("/account/2fa", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"], deduct_when=failed_login)
def verify():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    user: User = current_user._get_current_object()
    next_url = safe_next(request.values.get("next"))
    row = two_factor.enrolment(user)
    if row is None or row.confirmed_at is None:
        return redirect(next_url or url_for("admin.dashboard"))
    if request.method == "GET":
        return render_template("two_factor_verify.html", next_url=next_url, error=None)
    client = request.remote_addr
    actor = audit_domain.Actor.of(user, ip=client)
    if not code_may_be_tried(user, actor):
        message = throttled_message()
        if wants_json():
            raise InputError(429, "throttled", message)
        return render_template("two_factor_verify.html", next_url=next_url, error=message), 429
    code = (request.form.get("code") or "").strip()
    method = None
    if two_factor.check_totp(row, code):
        method = "totp"
    elif two_factor.use_recovery_code(user, code, code_keys()):
        method = "recovery_code"
    if method is None:
        audit_domain.record(actor, "staff.2fa_failed", "user", user.id)
        db.session.commit()
        message = _(
            "This code is not valid. Check your authenticator app's time, or use a recovery code."
        )
        return render_template("two_factor_verify.html", next_url=next_url, error=message), 401
    login_throttle.record_success(user.id, client)
    two_factor.second_factor_passed(user)
    details: dict[str, Any] = {"method": method}
    if method == "recovery_code":
        details["recovery_codes_left"] = two_factor.recovery_codes_left(user)
    audit_domain.record(actor, "staff.2fa_passed", "user", user.id, details)
    db.session.commit()
    session.pop(PENDING, None)
    session[PASSED_AT] = time.time()
    return redirect(next_url or url_for("admin.dashboard"), 303)


def qr_svg(uri: str) -> str:
    """The QR code as inline SVG, drawn here: the secret never leaves the server."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, title=_("QR code"))


@blueprint.route("/admin/2fa", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"], deduct_when=failed_login)
@requires("console:read")
def setup():
    user: User = g.staff
    if two_factor.is_enrolled(user):
        return render_template(
            "admin/two_factor.html",
            enrolled=True,
            codes=None,
            codes_left=two_factor.recovery_codes_left(user),
        )
    error = None
    if request.method == "POST" and two_factor.enrolment(user) is None:
        # No enrolment under way (a stale or forged form): start one by the page, not a 4xx.
        return redirect(url_for("two_factor.setup"), 303)
    status = 200
    if request.method == "POST":
        # Wrong codes here are throttled and logged as at login: the same guess, other page.
        actor = audit_domain.Actor.of(user, ip=request.remote_addr)
        if not code_may_be_tried(user, actor, enrolment=True):
            error, status = throttled_message(), 429
        else:
            codes = two_factor.confirm_enrolment(user, request.form.get("code", ""), code_keys()[0])
            if codes is not None:
                login_throttle.record_success(user.id, actor.ip)
                audit("staff.2fa_enrolled", "user", user.id)
                db.session.commit()
                session.pop(ENROL, None)
                session[PASSED_AT] = time.time()
                return render_template(
                    "admin/two_factor.html", enrolled=True, codes=codes, codes_left=len(codes)
                )
            audit_domain.record(actor, "staff.2fa_failed", "user", user.id, {"enrolment": True})
            error = _("This code is not valid. Scan the code again and enter the six digits shown.")
            status = 422
        row = two_factor.enrolment(user) or two_factor.start_enrolment(user)
        db.session.commit()
    else:
        row = two_factor.start_enrolment(user)
        db.session.commit()
    uri = two_factor.provisioning_uri(user, row.secret)
    return render_template(
        "admin/two_factor.html",
        enrolled=False,
        secret=row.secret,
        qr=qr_svg(uri),
        error=error,
        required=session.get(ENROL, False),
    ), status


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    app.before_request(gate)
    user_logged_in.connect(on_login, app)
