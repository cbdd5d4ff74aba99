"""Staff pages of the console (issue 14): staff members and invitations, API tokens, the
audit log and its export (its webhooks and subscriber changes are in the ``admin`` package).
Every view names its permission (``requires``); every change is written to the audit log in
the transaction that makes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask, abort, current_app, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import user_logged_in

from ..config import AUDIT_PAGE_SIZE
from ..delivery.staff import read_invitation, send_staff_invitation
from ..domain import audit as audit_domain
from ..domain.accounts import find_user
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.api_tokens import issue_api_token, revoke_api_token, tokens_of
from ..domain.passwords import PasswordRejected
from ..domain.releases import paginate
from ..domain.staff import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    Role,
    StaffError,
    accept_invitation,
    change_role,
    disable_staff,
    enable_staff,
    parse_role,
    parse_scopes,
    permissions_of,
    role_of,
    staff_members,
)
from ..domain.two_factor import is_enrolled
from ..extensions import db
from ..models import ApiToken, User, utcnow
from .admin.console import (
    ID,
    back_to,
    commit_keeping_staff_loaded,
    int_arg,
    saved,
    staff_blueprint,
    staff_error_message,
    streamed_download,
)
from .auth import audit, can, requires
from .inputs import InputError, say
from .two_factor_gate import step_up

blueprint = staff_blueprint
TOKEN_LIFETIMES = {"": None, "7": 7, "30": 30, "90": 90, "365": 365}  # days; "" = no expiry


def role_label(role: str | None) -> str:
    labels = {
        "owner": _("owner"),
        "editor": _("editor"),
        "sender": _("sender"),
        "viewer": _("viewer"),
    }
    return labels.get(role or "", role or "—")


@blueprint.context_processor
def staff_helpers() -> dict[str, Any]:
    return {
        "role_label": role_label,
        "roles": list(Role),
        "permissions": PERMISSIONS,
        "two_factor_enrolled": is_enrolled,
    }


def member_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or not user.is_staff:
        abort(404)
    return user


# --- Staff members ------------------------------------------------------------------------


@blueprint.get("/staff")
@requires("staff:manage")
def staff_list():
    return render_template(
        "admin/staff.html",
        members=staff_members(),
        role_permissions=ROLE_PERMISSIONS,
        values={"role": Role.EDITOR.value},
        errors={},
    )


@blueprint.post("/staff/invite")
@requires("staff:manage")
def invite_staff():
    values = {"email": request.form.get("email", ""), "role": request.form.get("role", "")}
    errors: dict[str, str] = {}
    address = None
    try:
        address = normalise_address(values["email"])
    except InvalidAddress as exc:
        errors["email"] = say(exc)
    try:
        role = parse_role(values["role"])
    except StaffError as exc:
        errors["role"] = staff_error_message(exc)
    if address is not None and not errors:
        existing = find_user(address)
        if existing is not None and existing.is_staff:
            errors["email"] = _("This address already has a staff account.")
    if errors or address is None:
        return render_template(
            "admin/staff.html",
            members=staff_members(),
            role_permissions=ROLE_PERMISSIONS,
            values=values,
            errors=errors,
        ), 422
    send_staff_invitation(address.email, address.key, role, g.staff)
    audit("staff.invite", "email", None, {"email": address.email, "role": str(role)})
    notice = _("The invitation is on its way to %(email)s.", email=address.email)
    return saved("staff_admin.staff_list", notice)


@blueprint.post(f"/staff/<{ID}:user_id>/role")
@requires("staff:manage")
def set_role(user_id: int):
    member = member_or_404(user_id)
    try:
        role = parse_role(request.form.get("role"))
        old = change_role(member, role)
    except StaffError as exc:
        db.session.rollback()
        return back_to("staff_admin.staff_list", staff_error_message(exc), "bad")
    audit("staff.role", "user", member.id, {"from": old, "to": str(role)})
    notice = _("%(email)s is now %(role)s.", email=member.email, role=role_label(role))
    return saved("staff_admin.staff_list", notice)


@blueprint.post(f"/staff/<{ID}:user_id>/<any(disable, enable):action>")
@requires("staff:manage")
def set_disabled(user_id: int, action: str):
    member = member_or_404(user_id)
    try:
        if action == "disable":
            if member.id == g.staff.id:
                raise StaffError("self")
            disable_staff(member)
        else:
            enable_staff(member)
    except StaffError as exc:
        db.session.rollback()
        return back_to("staff_admin.staff_list", staff_error_message(exc), "bad")
    audit(f"staff.{action}", "user", member.id)
    messages = {
        "disable": _("%(email)s can no longer use the console or the API.", email=member.email),
        "enable": _("%(email)s can use the console again.", email=member.email),
    }
    return saved("staff_admin.staff_list", messages[action])


@blueprint.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation_page(token: str):
    """Public: the invited person chooses a password (or confirms their existing one)."""
    expired, data = read_invitation(token)
    if data is None or expired:
        return render_template(
            "staff_invitation.html", state="expired" if expired else "invalid"
        ), (410 if expired else 404)
    try:
        role = parse_role(data["r"])
        address = normalise_address(data["e"])
    except (StaffError, InvalidAddress):
        return render_template("staff_invitation.html", state="invalid"), 404
    existing = find_user(address)
    if existing is not None and existing.is_staff:
        return render_template("staff_invitation.html", state="used"), 410
    context = {"state": "form", "email": address.email, "role": role, "existing": existing}
    if request.method == "GET":
        return render_template("staff_invitation.html", **context)
    try:
        user = accept_invitation(
            address.key,
            role,
            request.form.get("password", ""),
            policy=current_app.config.get("PASSWORD_POLICY") or "site",
        )
    except StaffError as exc:
        db.session.rollback()
        return render_template(
            "staff_invitation.html", **context, error=staff_error_message(exc)
        ), 422
    except PasswordRejected as exc:
        db.session.rollback()
        return render_template("staff_invitation.html", **context, error=say(exc)), 422
    audit_domain.record(
        audit_domain.Actor.of(user, ip=request.remote_addr),
        "staff.invitation_accepted",
        "user",
        user.id,
        {"role": str(role), "invited_by": data.get("by")},
    )
    notice = _("Welcome: log in with your new staff account.")
    return saved("accounts.login", notice, next=url_for("admin.dashboard"))


# --- API tokens ---------------------------------------------------------------------------


def visible_tokens() -> list[ApiToken]:
    """Owners see every token (to revoke a leaked one); others see their own."""
    return tokens_of(None if can("staff:manage") else g.staff)


def render_tokens(status: int = 200, **extra: Any):
    context = {
        "tokens": visible_tokens(),
        "own_permissions": sorted(permissions_of(g.staff), key=PERMISSIONS.index),
        "lifetimes": TOKEN_LIFETIMES,
        "now": utcnow(),
        "errors": {},
        "new_token": None,
    }
    context.update(extra)
    return render_template("admin/tokens.html", **context), status


@blueprint.get("/tokens")
@requires("tokens:manage")
def tokens():
    return render_tokens()


@blueprint.post("/tokens")
@requires("tokens:manage")
def create_token():
    name = (request.form.get("name") or "").strip()[:100] or None
    errors: dict[str, str] = {}
    try:
        scopes = parse_scopes(request.form.getlist("scope"))
    except StaffError as exc:
        scopes = frozenset()
        errors["scope"] = staff_error_message(exc)
    if not scopes and "scope" not in errors:
        errors["scope"] = _("Choose at least one permission.")
    # A token never holds more than its owner's role; asking for more is a mistake to show.
    if scopes - permissions_of(g.staff):
        errors["scope"] = _("Your role does not include some of these permissions.")
    lifetime = request.form.get("expires_in_days", "")
    if lifetime not in TOKEN_LIFETIMES:
        errors["expires_in_days"] = _("Choose a lifetime.")
    if errors:
        return render_tokens(422, errors=errors)
    days = TOKEN_LIFETIMES[lifetime]
    expires_at = utcnow() + timedelta(days=days) if days else None
    token = issue_api_token(g.staff, name=name, scopes=scopes, expires_at=expires_at)
    db.session.flush()
    created = tokens_of(g.staff)[0]
    audit(
        "token.create",
        "token",
        created.id,
        {"scopes": sorted(scopes), "expires_at": expires_at, "name": name},
    )
    db.session.commit()
    return render_tokens(201, new_token=token)


@blueprint.post(f"/tokens/<{ID}:token_id>/revoke")
@requires("tokens:manage")
def revoke_token(token_id: int):
    row = db.session.get(ApiToken, token_id)
    if row is None or (row.user_id != g.staff.id and not can("staff:manage")):
        abort(404)
    if revoke_api_token(row):
        audit("token.revoke", "token", row.id, {"owner": row.user_id})
        db.session.commit()
    return back_to("staff_admin.tokens", _("The token is revoked."))


# --- Audit log ----------------------------------------------------------------------------


def _date_arg(name: str) -> datetime | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            400, "invalid", _("Check the filters."), {name: _("Use the form YYYY-MM-DD.")}
        ) from None


def audit_filter_from_args() -> audit_domain.AuditFilter:
    def text(name: str, limit: int = 100) -> str:
        value = request.args.get(name, "").strip()
        if len(value) > limit or any(ord(ch) < 32 for ch in value):
            raise InputError(400, "invalid", _("Check the filters."), {name: _("Too long.")})
        return value

    until = _date_arg("until")
    if until is not None and len(request.args["until"].strip()) == 10:
        until += timedelta(days=1)  # a date alone means "to the end of that day"
    return audit_domain.AuditFilter(
        action=text("action"),
        actor=text("actor"),
        target_type=text("target_type"),
        target_id=text("target_id", 20),
        since=_date_arg("since"),
        until=until,
    )


def audit_filter_args() -> dict[str, str]:
    names = ("action", "actor", "target_type", "target_id", "since", "until")
    return {name: request.args[name] for name in names if request.args.get(name)}


@blueprint.get("/audit")
@requires("audit:read")
def audit_log():
    audit_filter = audit_filter_from_args()
    page = paginate(audit_filter.query(), page=int_arg("page"), per_page=AUDIT_PAGE_SIZE)
    return render_template(
        "admin/audit.html",
        page=page,
        entries=[audit_domain.entry_as_dict(entry) for entry in page.items],
        filter_args=audit_filter_args(),
    )


@blueprint.get("/audit/export.<any(csv, json):fmt>")
@requires("audit:read")
@step_up
def export_audit_log(fmt: str):
    audit_filter = audit_filter_from_args()
    # Exporting the log is itself an export a regulator asks about.
    audit("audit.export", "audit_log", None, {"format": fmt, **audit_filter_args()})
    commit_keeping_staff_loaded()
    if fmt == "csv":
        lines = audit_domain.export_csv_lines(audit_filter)
        mimetype = "text/csv"
    else:
        lines = audit_domain.export_json_lines(audit_filter)
        mimetype = "application/json"
    return streamed_download(lines, mimetype, f"audit-{utcnow():%Y%m%d-%H%M}.{fmt}")


# --- Logins -------------------------------------------------------------------------------


def record_login(_app: Flask, user: User, **_extra: Any) -> None:
    """Staff logins go to the audit log (readers' do not: they are not staff actions)."""
    if not getattr(user, "is_staff", False):
        return
    audit_domain.record(
        audit_domain.Actor.of(user, ip=request.remote_addr),
        "staff.login",
        "user",
        user.id,
        {"role": role_of(user)},
    )
    db.session.commit()


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    user_logged_in.connect(record_login, app)
