"""The service's own commands as tests start them in subprocesses: ``flask`` commands of this
checkout's code, the worker's settings, and gunicorn serving ``wsgi:app`` until it answers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.conftest import ROOT, TEST_SECRET_KEY, free_port
from tests.support.live import HttpClient


def flask_command(*args: str) -> list[str]:
    """``flask --app newsletter ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "newsletter", *args]


def worker_command(name: str, *, until_idle: bool = False) -> list[str]:
    """``flask worker`` as a test starts it: named, polling every 0.2 s."""
    command = flask_command("worker", "--name", name, "--poll-interval", "0.2")
    if until_idle:
        command.append("--until-idle")
    return command


def worker_environment(
    database_url: str, smtp_port: int, env: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment plus the test site's settings (``env`` overrides them)."""
    return {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_port}?timeout=10",
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
        "NEWSLETTER_MAIL_FROM": "Newsroom <news@example.org>",
        "NEWSLETTER_SCHEDULER_LEASE_SECONDS": "3",
        "NEWSLETTER_SEND_CONNECTIONS": "2",
        **(env or {}),
    }


@contextlib.contextmanager
def gunicorn(
    database_url: str,
    smtp_port: int,
    log_dir: Path,
    *,
    workers: int,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[str]:
    """``gunicorn -w WORKERS wsgi:app`` from this checkout on a free loopback port, with only
    the test site's NEWSLETTER_ settings (``env`` adds to them), logging to
    ``log_dir/gunicorn.log``; yields its URL once ``/healthz`` answers, stops it afterwards."""
    port = free_port()
    log_path = log_dir / "gunicorn.log"
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "FLASK_"))
    }
    environment.update(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_port}?timeout=5",
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            **(env or {}),
        }
    )
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-w", str(workers),
        "-b", f"127.0.0.1:{port}",
        "wsgi:app",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_health(url, log_path)
            yield url
        finally:
            process.terminate()
            process.wait(20)


def _wait_for_health(url: str, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if HttpClient(url).get("/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer /healthz:\n{log_path.read_text()}")
