"""Emails of the accounts capability: codes (verify, reset, change email) and notices.

Links are built from ``NEWSLETTER_PUBLIC_URL`` (``public_url_for``), never from the request's
Host header. Each code email holds the code in its plain text and a link naming the same code.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ..config import CODE_LIFETIMES
from ..domain import codes
from ..domain.accounts import (
    ACCOUNT_EXISTS_KIND,
    change_email_token,
    may_send_account_notice,
    reset_token,
    verification_token,
)
from ..domain.addresses import Address
from ..mail.render import render_email
from ..models import User
from .links import public_url_for
from .outbox import queue_email
from .signing import app_signer

VERIFY_KIND = "account_verify"
RESET_KIND = "account_reset"
CHANGE_EMAIL_KIND = "account_change_email"
PASSWORD_CHANGED_KIND = "account_password_changed"  # noqa: S105 - a message kind
EMAIL_CHANGED_KIND = "account_email_changed"


def code_keys() -> list[str]:
    """Keys for hashing codes: the current key first, then older ones still accepted."""
    config = current_app.config
    return [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]


def _minutes(purpose: str) -> int:
    return int(CODE_LIFETIMES[purpose].total_seconds() // 60)


def _issue(user: User, purpose: str, **options: Any) -> codes.IssuedCode | None:
    """A new code under the current key; None when the cooldown or hourly cap refused it."""
    issued = codes.issue_code(user, purpose, code_keys()[0], **options)
    return issued if isinstance(issued, codes.IssuedCode) else None


def _queue_code_email(
    kind: str,
    user: User,
    issued: codes.IssuedCode,
    *,
    template: str,
    to: str | None = None,
    **links: object,
) -> None:
    """The code's email, in the account's language, to ``to`` (the account's address)."""
    queue_email(
        kind,
        to=to or user.email,
        template=template,
        language=user.language,
        code=issued.code,
        **links,
    )


def send_verification_code(user: User, *, enforce_limits: bool = True) -> bool:
    """Queue a verification code + link; False when cooldown or hourly cap refused."""
    issued = _issue(user, codes.VERIFY_EMAIL, enforce_limits=enforce_limits)
    if issued is None:
        return False
    token = verification_token(app_signer(), user, issued.row)
    _queue_code_email(
        VERIFY_KIND,
        user,
        issued,
        template="account_verify",
        verify_url=public_url_for("accounts.verify_link", token=token),
        hours=_minutes(codes.VERIFY_EMAIL) // 60,
    )
    return True


def send_reset_code(user: User, *, next_url: str | None = None) -> bool:
    """Queue a password-reset code + link; False when cooldown or hourly cap refused."""
    issued = _issue(user, codes.RESET_PASSWORD)
    if issued is None:
        return False
    token = reset_token(app_signer(), user, issued.row)
    values = {"token": token}
    if next_url:
        values["next"] = next_url
    _queue_code_email(
        RESET_KIND,
        user,
        issued,
        template="account_reset",
        reset_url=public_url_for("accounts.reset_confirm", **values),
        minutes=_minutes(codes.RESET_PASSWORD),
    )
    return True


def render_decoy_reset_email(language: str) -> None:
    """Do the rendering work of a reset email for an address with no account, and throw it
    away: the answer to "send me a code" then takes about as long whether or not the address
    is registered (a timing side channel would undo the identical answers)."""
    render_email(
        "account_reset",
        language,
        code=codes.generate_code(),
        reset_url=public_url_for("accounts.reset_confirm", token="x" * 120),
        minutes=_minutes(codes.RESET_PASSWORD),
    )


def send_change_email_code(user: User, new_address: Address) -> bool:
    """Queue a code + link to the *new* address; the change happens once it is entered."""
    issued = _issue(user, codes.CHANGE_EMAIL, new_email=new_address.email)
    if issued is None:
        return False
    token = change_email_token(app_signer(), user, issued.row)
    _queue_code_email(
        CHANGE_EMAIL_KIND,
        user,
        issued,
        template="account_change_email",
        to=new_address.email,
        confirm_url=public_url_for("accounts.change_email_link", token=token),
        hours=_minutes(codes.CHANGE_EMAIL) // 60,
    )
    return True


def queue_account_exists_notice(user: User) -> int | None:
    """ "Someone tried to register with your address", capped per day."""
    if not may_send_account_notice(user):
        return None
    return queue_email(
        ACCOUNT_EXISTS_KIND,
        to=user.email,
        template="account_exists",
        language=user.language,
        login_url=public_url_for("accounts.login"),
        reset_url=public_url_for("accounts.reset_request"),
    )


def queue_password_changed(user: User) -> int:
    """Tell the owner; if it was not them, the reset link gets the account back."""
    return queue_email(
        PASSWORD_CHANGED_KIND,
        to=user.email,
        template="account_password_changed",
        language=user.language,
        reset_url=public_url_for("accounts.reset_request"),
    )


def queue_email_changed(user: User, old_email: str) -> int:
    """Tell the *old* address that the account moved, so a hijack does not go unnoticed."""
    return queue_email(
        EMAIL_CHANGED_KIND,
        to=old_email,
        template="account_email_changed",
        language=user.language,
        new_email=user.email,
        reset_url=public_url_for("accounts.reset_request"),
    )
