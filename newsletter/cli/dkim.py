"""``flask --app newsletter dkim keygen --domain D --selector S``: a DKIM key and its record.

flask --app newsletter dkim keygen --domain example.org --selector news2026 --algorithm ed25519
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..mail.dkim import generate_key

# A DNS label sequence (LDH), as DKIM's d= and s= must be.
_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")  # fmt: skip
# A TXT record's character-strings hold at most 255 octets each (RFC 1035 s.3.3).
_TXT_CHUNK = 255


def _dns_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _DNS_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a DNS name")
    return value.lower()


@click.group("dkim", cls=AppGroup)
def dkim_group() -> None:
    """DKIM keys for signing outgoing mail."""


@dkim_group.command("keygen")
@click.option("--domain", required=True, callback=_dns_name, help="the d= domain (From's)")
@click.option("--selector", required=True, callback=_dns_name, help="the s= selector")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519"]),
    default="rsa",
    show_default=True,
    help="RSA 2048 is read by every receiver; Ed25519 (RFC 8463) is smaller and faster",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="key file to write")
def keygen_command(domain: str, selector: str, algorithm: str, out: Path | None) -> None:
    """Write a new private key (PEM, mode 0600; never overwrites) and print the DNS TXT
    record to publish."""
    if out is None:
        out = Path(current_app.instance_path) / f"dkim-{selector}.{domain}.pem"
    key = generate_key(algorithm)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists: choose another --out or selector") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.pem())
    value = key.txt_record()
    name = f"{selector}._domainkey.{domain}"
    chunks = " ".join(
        f'"{value[i : i + _TXT_CHUNK]}"' for i in range(0, len(value), _TXT_CHUNK)
    )
    click.echo(f"key ({key.kind}) written to {out}")
    click.echo(f"name: {name}")
    click.echo(f"value: {value}")
    click.echo(f"zone file: {name}. IN TXT {chunks}")
    click.echo(
        f"then set NEWSLETTER_DKIM_DOMAIN={domain} NEWSLETTER_DKIM_SELECTOR={selector} "
        f"NEWSLETTER_DKIM_KEY_FILE={out.resolve()}"
    )


def register(app: Flask) -> None:
    app.cli.add_command(dkim_group)
