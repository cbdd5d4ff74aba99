"""``flask --app newsletter inbound --host H --port P [--lmtp]``: the feedback listener."""

from __future__ import annotations

import signal
import threading

import click
from flask import Flask, current_app

from ..inbound.listener import InboundController


@click.command("inbound")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=int, help="Port to listen on.")
@click.option("--lmtp", is_flag=True, help="Speak LMTP (RFC 2033) instead of SMTP.")
def inbound_command(host: str, port: int, lmtp: bool) -> None:
    """Receive bounces, complaints and mailto unsubscribes from the site's mail server."""
    controller = InboundController(current_app._get_current_object(), host, port, lmtp=lmtp)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stopping.set())
    controller.start()
    click.echo(f"inbound {'LMTP' if lmtp else 'SMTP'} listener on {host}:{port}", err=True)
    try:
        stopping.wait()
    finally:
        controller.stop()


def register(app: Flask) -> None:
    app.cli.add_command(inbound_command)
