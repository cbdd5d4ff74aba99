"""``flask --app newsletter staff ...``: staff accounts and their API tokens.

echo 'a long passphrase' | flask --app newsletter staff create editor@example.org
flask --app newsletter staff token editor@example.org
flask --app newsletter staff revoke editor@example.org
"""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..domain.accounts import AccountExists, create_staff, find_user
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.api_tokens import issue_api_token, revoke_api_tokens
from ..domain.passwords import PasswordRejected
from ..extensions import db
from ..models import User


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
@click.option("--language", type=click.Choice(["fr", "en"]), default="fr", show_default=True)
def create_command(email: str, language: str) -> None:
    """Create a staff account; the password is read from stdin and must meet the policy."""
    password = _read_password()
    try:
        user = create_staff(
            email,
            password,
            policy=current_app.config.get("PASSWORD_POLICY") or "site",
            language=language,
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
    db.session.commit()
    click.echo(f"created staff account {user.email}")


@staff_group.command("token")
@click.argument("email")
@click.option("--name", default=None, help="A label to recognise the token by.")
def token_command(email: str, name: str | None) -> None:
    """Print a new API token for a staff account (shown once; only its hash is stored)."""
    user = _staff_user(email)
    token = issue_api_token(user, name=name)
    db.session.commit()
    click.echo(token)


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
    db.session.commit()
    click.echo(
        f"revoked {count} token(s) of {user.email}" + (", staff role removed" if demote else "")
    )


def register(app: Flask) -> None:
    app.cli.add_command(staff_group)
