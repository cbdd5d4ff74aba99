"""Fresh databases built the way production builds them (``flask db upgrade``), for the test
suite (tests/conftest.py) and the benchmarks (bench/common.py) alike. Imports nothing of the
app, so a benchmark can use it before it builds one."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent.parent


def migrate(url: str) -> None:
    """Build the schema at ``url`` with ``flask db upgrade`` (migrations/ only, no create_all)."""
    completed = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "newsletter", "db", "upgrade"],
        cwd=ROOT,
        env={**os.environ, "NEWSLETTER_DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{completed.stderr[-3000:]}")


@contextlib.contextmanager
def fresh_postgres_schema(base_url: str, prefix: str, **engine_options: Any) -> Iterator[str]:
    """A new schema ``<prefix>_<random>`` on the server of ``base_url``, migrated, dropped with
    everything in it afterwards. Yields a URL whose connections use only that schema."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(base_url, **engine_options)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        migrate(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
