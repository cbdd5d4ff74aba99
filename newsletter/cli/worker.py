"""``flask --app newsletter worker``: scheduler + sender."""

from __future__ import annotations

import click
from flask import Flask, current_app

from ..mail.dkim import DkimKeyError, signer_from_settings
from ..scheduling.worker import Worker


@click.command("worker")
@click.option("--until-idle", is_flag=True, help="Run due jobs, deliver what is pending, exit.")
@click.option("--poll-interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--name", default=None, help="Worker name shown in logs (default host:pid).")
def worker_command(until_idle: bool, poll_interval: float, name: str | None) -> None:
    """Deliver queued mail and run scheduled digests until stopped."""
    try:
        # A DKIM key that cannot be read stops the worker at once: mail never leaves unsigned
        # when signing was asked for.
        signer_from_settings(current_app.config)
    except DkimKeyError as exc:
        raise click.ClickException(str(exc)) from None
    worker = Worker(current_app._get_current_object(), name=name, poll_interval=poll_interval)
    summary = worker.run(until_idle=until_idle)
    if until_idle:
        click.echo(summary.describe())


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
