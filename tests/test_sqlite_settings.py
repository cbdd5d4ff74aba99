"""SQLite, the embedded default: the web server and the worker share one file (WAL, a busy
timeout), and a commit is not an fsync (the outcome recorder commits for every few messages)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from newsletter.config import SQLITE_BUSY_TIMEOUT_SECONDS
from newsletter.extensions import db


def test_every_sqlite_connection_is_tuned_for_sharing_and_cheap_commits(app, is_postgres):
    if is_postgres:
        pytest.skip("SQLite settings")
    # A fresh connection, not one the fixtures may have set up otherwise.
    with app.app_context(), db.engine.connect() as connection:
        pragma = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL: synced at checkpoints; a SIGKILL loses no commit
        "busy_timeout": SQLITE_BUSY_TIMEOUT_SECONDS * 1000,
        "foreign_keys": 1,
    }
