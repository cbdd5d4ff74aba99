"""What every account view shares: the blueprint, input helpers, request guards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
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

from ...config import MAX_PAGE_URL_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ...domain.addresses import Address, InvalidAddress, normalise_address
from ...domain.passwords import BrokenRule
from ...extensions import csrf
from ..inputs import InputError, invalid_fields, is_json_request, page_or_json, read_payload, say

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
        raise invalid_fields({field: say(exc)}) from None


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


def _weak_password(
    rules: list[BrokenRule], status: int, page: Callable[[list[str]], Any], field: str = "password"
):
    """The answer to a refused password: JSON clients get ``_password_error``, browsers what
    ``page`` builds from the broken rules' messages."""
    return page_or_json(_password_error(rules, status, field), lambda: page(_rule_messages(rules)))


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


def _go_to(endpoint: str, notice: str | None = None, **values: Any) -> Response:
    """After a form's POST: a 303 to ``endpoint``, with ``notice`` flashed for the next page."""
    if notice:
        flash(notice, FLASH)
    return redirect(url_for(endpoint, **values), 303)


def _invalid_link(state: str, kind: str):
    """The invalid-link page; a JSON request gets the contract's error instead."""
    return page_or_json(
        InputError(400, "invalid_link", _("This link is no longer valid.")),
        lambda: _page("link_invalid.html", 400, state=state, kind=kind),
    )


def _invalid_code_message() -> str:
    # One message for wrong, expired, used, replaced and unknown-address: it reveals nothing.
    return _("This code is wrong or has expired. Check it, or ask for a new code.")


def _invalid_code_error() -> InputError:
    return InputError(
        400, "invalid_code", _invalid_code_message(), {"code": _invalid_code_message()}
    )


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
