"""``flask --app newsletter digests ...``: send one now, follow a send, list the recent ones."""

from __future__ import annotations

import time

import click
from flask import Flask
from flask.cli import AppGroup

from ..config import LANGUAGES
from ..delivery.digest_runs import run_digest
from ..domain.digests import create_digest, digest_progress, digests_query
from ..domain.releases import InvalidInput, iso
from ..extensions import db
from ..models import Digest, DigestStatus

POLL_SECONDS = 0.5


@click.group("digests", cls=AppGroup)
def digests_group() -> None:
    """Digests of the latest releases."""


def _fresh(digest_id: int) -> Digest | None:
    db.session.expire_all()
    digest = db.session.get(Digest, digest_id)
    db.session.rollback()  # each poll reads in a fresh transaction
    return digest


def _describe(digest: Digest) -> str:
    progress = digest_progress(digest)
    text = (
        f"digest {digest.id} [{digest.language}] {digest.status}"
        f"{' (paused)' if digest.paused else ''}: {progress.recipients} recipients, "
        f"{progress.sent} sent, {progress.failed} failed, {progress.pending} pending"
    )
    if progress.cancelled:
        text += f", {progress.cancelled} cancelled (left meanwhile)"
    if digest.failure_reason:
        text += f" — {digest.failure_reason}"
    return text


def follow(digest_id: int, timeout: float | None = None) -> Digest | None:
    """Show a progress bar while the digest is sending; returns it once it is not."""
    digest = _fresh(digest_id)
    if digest is None or digest.status != DigestStatus.SENDING:
        return digest
    deadline = None if timeout is None else time.monotonic() + timeout
    with click.progressbar(length=max(digest.recipients, 1), label="sending") as bar:
        shown = 0
        while digest is not None and digest.status == DigestStatus.SENDING:
            progress = digest_progress(digest)
            bar.update(max(progress.done - shown, 0))
            shown = max(shown, progress.done)
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
            digest = _fresh(digest_id)
        if digest is not None:
            bar.update(max(digest_progress(digest).done - shown, 0))
    return digest


@digests_group.command("send-now")
@click.option("--language", type=click.Choice(LANGUAGES), required=True)
@click.option("--subject", default=None, help="Default: the date and the top headline.")
@click.option("--wait/--no-wait", default=False, help="Show progress until workers are done.")
def send_now(language: str, subject: str | None, wait: bool) -> None:
    """Gather the new releases of LANGUAGE and start sending them now (workers send)."""
    try:
        digest = create_digest({"language": language, "subject": subject})
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    outcome = run_digest(digest.id)
    digest = _fresh(outcome.digest_id)
    if digest is None:  # pragma: no cover - deleted under our feet
        raise click.ClickException("the digest disappeared")
    click.echo(_describe(digest))
    if wait and digest.status == DigestStatus.SENDING:
        digest = follow(digest.id)
        if digest is not None:
            click.echo(_describe(digest))


@digests_group.command("status")
@click.argument("digest_id", type=int)
@click.option("--wait/--no-wait", default=True, help="Follow a send in progress.")
@click.option("--timeout", type=float, default=None, help="Stop following after N seconds.")
def status(digest_id: int, wait: bool, timeout: float | None) -> None:
    """Status and counters of a digest, with a progress bar while it is sending."""
    digest = _fresh(digest_id)
    if digest is None:
        raise click.ClickException(f"no digest {digest_id}")
    if wait and digest.status == DigestStatus.SENDING:
        digest = follow(digest_id, timeout)
        if digest is None:  # pragma: no cover
            raise click.ClickException(f"no digest {digest_id}")
    click.echo(_describe(digest))


@digests_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--status", "status_filter", type=click.Choice(list(DigestStatus)), default=None)
def list_digests(limit: int, status_filter: str | None) -> None:
    """The most recent digests, newest first."""
    rows = db.session.scalars(digests_query(status=status_filter).limit(limit)).all()
    if not rows:
        click.echo("no digests")
        return
    click.echo(
        f"{'id':>6}  {'status':<9} {'lang':<4} {'send at (UTC)':<20} "
        f"{'recipients':>10} {'sent':>8} {'failed':>7}  subject"
    )
    for digest in rows:
        click.echo(
            f"{digest.id:>6}  {digest.status:<9} {digest.language:<4} "
            f"{(iso(digest.send_at) or ''):<20} {digest.recipients:>10} {digest.sent:>8} "
            f"{digest.failed:>7}  {digest.subject or ''}"
        )


def register(app: Flask) -> None:
    app.cli.add_command(digests_group)
