"""``flask --app newsletter staff ...``: staff accounts and their API tokens.

echo 'a long passphrase' | flask --app newsletter staff create editor@example.org --role editor
flask --app newsletter staff token editor@example.org --scope releases:write --expires-in 30d
flask --app newsletter staff role editor@example.org sender
flask --app newsletter staff revoke editor@example.org
"""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..config import DEFAULT_LANGUAGE, LANGUAGES
from ..domain.accounts import AccountExists, create_staff, find_user
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.api_tokens import issue_api_token, revoke_api_tokens
from ..domain.audit import Actor, record
from ..domain.passwords import PasswordRejected
from ..domain.staff import PERMISSIONS, Role, StaffError, change_role, parse_scopes, role_of
from ..extensions import db
from ..models import User, utcnow

# Changes made from the command line are logged as this actor (no session, no address).
CLI_ACTOR = Actor(None, "cli")
DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """``90m``, ``12h``, ``30d``: a token's lifetime from the command line."""
    text = value.strip().lower()
    if len(text) < 2 or text[-1] not in DURATION_UNITS or not text[:-1].isdigit():
        raise click.BadParameter("use a number followed by m, h or d, such as 30d")
    seconds = int(text[:-1]) * DURATION_UNITS[text[-1]]
    if seconds <= 0 or seconds > 10 * 365 * 86400:
        raise click.BadParameter("between one minute and ten years")
    return timedelta(seconds=seconds)


def _read_password() -> str:
    """From a terminal: asked twice, hidden. From a pipe: the first line, nothing stripped
    but the line end (spaces are legal in a passphrase)."""
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = stdin.readline()
    return line.rstrip("\r\n")


def _staff_user(email: str) -> User:
    try:
        user = find_user(normalise_address(email))
    except InvalidAddress as exc:
        raise click.ClickException(f"{email}: {exc}") from None
    if user is None or not user.is_staff:
        raise click.ClickException(f"no staff account for {email}")
    return user


@click.group("staff", cls=AppGroup)
def staff_group() -> None:
    """Staff accounts and API tokens."""


@staff_group.command("create")
@click.argument("email")
@click.option(
    "--language", type=click.Choice(LANGUAGES), default=DEFAULT_LANGUAGE, show_default=True
)
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.OWNER.value,
    show_default=True,
    help="owner: everything; editor: releases, previews, test sends; "
    "sender: schedules and sends; viewer: read-only.",
)
def create_command(email: str, language: str, role: str) -> None:
    """Create a staff account; the password is read from stdin and must meet the policy."""
    password = _read_password()
    try:
        user = create_staff(
            email,
            password,
            policy=current_app.config.get("PASSWORD_POLICY") or "site",
            language=language,
            role=role,
        )
    except InvalidAddress as exc:
        raise click.ClickException(f"{email}: {exc}") from None
    except PasswordRejected as exc:
        db.session.rollback()
        reasons = "\n".join(f"  - {rule.english()}" for rule in exc.rules)
        raise click.ClickException(f"password refused:\n{reasons}") from None
    except AccountExists:
        db.session.rollback()
        raise click.ClickException(f"an account already uses {email}") from None
    record(CLI_ACTOR, "staff.create", "user", user.id, {"role": role, "email": user.email})
    db.session.commit()
    click.echo(f"created staff account {user.email} ({role})")


@staff_group.command("token")
@click.argument("email")
@click.option("--name", default=None, help="A label to recognise the token by.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A permission the token may use (repeat, or separate by commas); "
    "default: every permission of the role. One of: " + ", ".join(PERMISSIONS),
)
@click.option("--expires-in", default=None, help="Lifetime such as 90m, 12h or 30d; default: none.")
def token_command(
    email: str, name: str | None, scopes: tuple[str, ...], expires_in: str | None
) -> None:
    """Print a new API token for a staff account (shown once; only its hash is stored).

    Whatever its scopes, a token never does more than its owner's role allows at use time."""
    user = _staff_user(email)
    if role_of(user) is None:
        raise click.ClickException(f"{user.email} is disabled or has no role")
    try:
        chosen = parse_scopes(scopes) if scopes else None
    except StaffError:
        raise click.BadParameter(
            "unknown scope; one of: " + ", ".join(PERMISSIONS), param_hint="--scope"
        ) from None
    expires_at = utcnow() + parse_duration(expires_in) if expires_in else None
    token = issue_api_token(user, name=name, scopes=chosen, expires_at=expires_at)
    db.session.flush()
    record(
        CLI_ACTOR,
        "token.create",
        "user",
        user.id,
        {
            "scopes": sorted(chosen) if chosen is not None else "role",
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    db.session.commit()
    click.echo(token)


@staff_group.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice([role.value for role in Role]))
def role_command(email: str, role: str) -> None:
    """Give a staff member another role (the last owner cannot be demoted)."""
    user = _staff_user(email)
    try:
        old = change_role(user, Role(role))
    except StaffError as exc:
        raise click.ClickException(f"refused: {exc.reason}") from None
    record(CLI_ACTOR, "staff.role", "user", user.id, {"from": old, "to": role})
    db.session.commit()
    click.echo(f"{user.email} is now {role}")


@staff_group.command("revoke")
@click.argument("email")
@click.option("--demote", is_flag=True, help="Also remove the staff role and end sessions.")
def revoke_command(email: str, demote: bool) -> None:
    """Revoke every API token of a staff account."""
    user = _staff_user(email)
    count = revoke_api_tokens(user)
    if demote:
        user.is_staff = False
        user.session_version = (user.session_version or 1) + 1
    record(CLI_ACTOR, "token.revoke_all", "user", user.id, {"count": count, "demote": demote})
    db.session.commit()
    click.echo(
        f"revoked {count} token(s) of {user.email}" + (", staff role removed" if demote else "")
    )


def register(app: Flask) -> None:
    app.cli.add_command(staff_group)
