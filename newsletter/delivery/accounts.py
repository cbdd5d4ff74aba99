"""Emails of the accounts capability: codes (verify, reset, change email) and notices.

Links are built from ``NEWSLETTER_PUBLIC_URL`` (``public_url_for``), never from the request's
Host header. Each code email holds the code in its plain text and a link naming the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from ..domain.tokens import TokenSigner
from ..mail.render import render_email
from ..models import OneTimeCode, User
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


@dataclass(frozen=True)
class _CodeEmail:
    """What sets the three code emails apart; the message kind is also the template's name."""

    purpose: str
    kind: str
    token: Callable[[TokenSigner, User, OneTimeCode], str]
    endpoint: str  # the link that names the code
    link_name: str  # the template's name for that link
    lifetime_in_hours: bool  # the template says "hours", else "minutes"


_VERIFY_EMAIL = _CodeEmail(
    codes.VERIFY_EMAIL,
    VERIFY_KIND,
    verification_token,
    endpoint="accounts.verify_link",
    link_name="verify_url",
    lifetime_in_hours=True,
)
_RESET_EMAIL = _CodeEmail(
    codes.RESET_PASSWORD,
    RESET_KIND,
    reset_token,
    endpoint="accounts.reset_confirm",
    link_name="reset_url",
    lifetime_in_hours=False,
)
_CHANGE_EMAIL = _CodeEmail(
    codes.CHANGE_EMAIL,
    CHANGE_EMAIL_KIND,
    change_email_token,
    endpoint="accounts.change_email_link",
    link_name="confirm_url",
    lifetime_in_hours=True,
)


def _lifetime(email: _CodeEmail) -> dict[str, int]:
    minutes = _minutes(email.purpose)
    return {"hours": minutes // 60} if email.lifetime_in_hours else {"minutes": minutes}


def _send_code(
    user: User,
    email: _CodeEmail,
    *,
    to: str | None = None,
    link_values: dict[str, str] | None = None,
    **issue_options: Any,
) -> bool:
    """Issue a code under the current key and queue its email (code + link) in the account's
    language to ``to`` (the account's address); False when the cooldown or hourly cap refused."""
    issued = codes.issue_code(user, email.purpose, code_keys()[0], **issue_options)
    if not isinstance(issued, codes.IssuedCode):
        return False
    token = email.token(app_signer(), user, issued.row)
    link = public_url_for(email.endpoint, token=token, **(link_values or {}))
    queue_email(
        email.kind,
        to=to or user.email,
        template=email.kind,
        language=user.language,
        code=issued.code,
        **{email.link_name: link},
        **_lifetime(email),
    )
    return True


def send_verification_code(user: User, *, enforce_limits: bool = True) -> bool:
    """Queue a verification code + link; False when cooldown or hourly cap refused."""
    return _send_code(user, _VERIFY_EMAIL, enforce_limits=enforce_limits)


def send_reset_code(user: User, *, next_url: str | None = None) -> bool:
    """Queue a password-reset code + link; False when cooldown or hourly cap refused."""
    return _send_code(user, _RESET_EMAIL, link_values={"next": next_url} if next_url else None)


def render_decoy_reset_email(language: str) -> None:
    """Do the rendering work of a reset email for an address with no account, and throw it
    away: the answer to "send me a code" then takes about as long whether or not the address
    is registered (a timing side channel would undo the identical answers)."""
    render_email(
        _RESET_EMAIL.kind,
        language,
        code=codes.generate_code(),
        reset_url=public_url_for(_RESET_EMAIL.endpoint, token="x" * 120),
        **_lifetime(_RESET_EMAIL),
    )


def send_change_email_code(user: User, new_address: Address) -> bool:
    """Queue a code + link to the *new* address; the change happens once it is entered."""
    return _send_code(user, _CHANGE_EMAIL, to=new_address.email, new_email=new_address.email)


def _queue_notice(kind: str, user: User, *, to: str | None = None, **values: str) -> int:
    """A notice about the account, in its language, to ``to`` (the account's address). Each
    one offers the reset page: if the change was not the owner's, that gets the account back.
    The message kind is also the template's name."""
    return queue_email(
        kind,
        to=to or user.email,
        template=kind,
        language=user.language,
        reset_url=public_url_for("accounts.reset_request"),
        **values,
    )


def queue_account_exists_notice(user: User) -> int | None:
    """ "Someone tried to register with your address", capped per day."""
    if not may_send_account_notice(user):
        return None
    return _queue_notice(ACCOUNT_EXISTS_KIND, user, login_url=public_url_for("accounts.login"))


def queue_password_changed(user: User) -> int:
    """Tell the owner; if it was not them, the reset link gets the account back."""
    return _queue_notice(PASSWORD_CHANGED_KIND, user)


def queue_email_changed(user: User, old_email: str) -> int:
    """Tell the *old* address that the account moved, so a hijack does not go unnoticed."""
    return _queue_notice(EMAIL_CHANGED_KIND, user, to=old_email, new_email=user.email)
