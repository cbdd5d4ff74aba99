"""What every benchmark shares: a fresh database, the app built for it, timing and the table."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.databases import fresh_postgres_schema, migrate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET_KEY = "bench-secret-key-" + "b" * 40

# Never write a development key into instance/ from a benchmark.
os.environ.setdefault("NEWSLETTER_SECRET_KEY", SECRET_KEY)


def postgres_url() -> str:
    """The server the benchmark may use (``BENCH_POSTGRES_URL`` overrides)."""
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_available() -> bool:
    try:
        engine = create_engine(postgres_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "skip the PostgreSQL figures"
        return False


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A migrated, empty database: a temporary SQLite file, or a new PostgreSQL schema that is
    dropped afterwards. Yields its SQLAlchemy URL."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="nl-bench-") as directory:
            url = f"sqlite:///{directory}/bench.db"
            migrate(url)
            yield url
        return
    with fresh_postgres_schema(postgres_url(), "nl_bench") as url:
        yield url


def bench_config(database_url: str, mail_url: str, **overrides: object) -> dict:
    """Settings for an app under benchmark; production defaults unless overridden."""
    config = {
        "SECRET_KEY": SECRET_KEY,
        "SECRET_KEY_FALLBACKS": [],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_URL": mail_url,
        "MAIL_FROM": "Newsroom <news@example.org>",
        "PUBLIC_URL": "https://news.example.org",
        "RATELIMIT_ENABLED": False,
    }
    config.update(overrides)
    return config


@contextlib.contextmanager
def bench_app(database_url: str, mail_url: str, **overrides: object):
    """The real application, inside an app context; engine disposed afterwards."""
    from newsletter import create_app
    from newsletter.extensions import db

    app = create_app(bench_config(database_url, mail_url, **overrides))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


@dataclass
class Figure:
    """One line of the results table."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    note: str = ""
    # "higher" when more is better (a rate), "lower" when less is (seconds, bytes).
    better: str = "higher"

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        number = f"{value:,.0f}"
    elif abs(value) >= 10:
        number = f"{value:.1f}"
    else:
        number = f"{value:.2f}"
    return f"{number} {unit}".strip()


def render_table(figures: list[Figure]) -> str:
    """A plain-text table: figure, value, baseline, ratio, goal."""
    header = ("figure", "value", "baseline", "ratio", "goal")
    rows = [header]
    for figure in figures:
        baseline = (
            f"{fmt(figure.baseline, figure.unit)} ({figure.baseline_name})"
            if figure.baseline is not None
            else figure.baseline_name or "-"
        )
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        name = figure.name + (f" [{figure.note}]" if figure.note else "")
        rows.append((name, fmt(figure.value, figure.unit), baseline, ratio, figure.goal or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


class Stopwatch:
    """``with Stopwatch() as watch: ...; watch.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.monotonic() - self.started


def log(message: str) -> None:
    """Progress lines go to stderr so the table on stdout stays clean."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
