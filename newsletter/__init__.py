"""newsletter: a self-hosted newsletter and subscriber service.

``create_app`` only wires things together: configuration, extensions, blueprints, commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from .config import SQLITE_BUSY_TIMEOUT_SECONDS, load_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the application; ``test_config`` overrides settings read from the environment."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_settings(Path(app.instance_path)))
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    # `mail audit --sample` builds a scratch copy of the site with this same factory.
    app.extensions["newsletter.create_app"] = create_app

    register_proxy_fix(app)
    register_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_logging(app: Flask) -> None:
    from .observability.logs import configure_logging

    configure_logging(app.config.get("LOG_FORMAT") or "text")


def register_extensions(app: Flask) -> None:
    from .config import MIGRATIONS_DIR
    from .extensions import csrf, db, limiter, migrate
    from .web.i18n import init_babel
    from .web.sessions import init_login

    db.init_app(app)
    _tune_sqlite(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    csrf.init_app(app)
    limiter.init_app(app)
    init_babel(app)
    init_login(app)


def _tune_sqlite(app: Flask) -> None:
    """WAL and a busy timeout let the web server and the worker share one SQLite file."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    from .extensions import db

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if ":memory:" not in app.config["SQLALCHEMY_DATABASE_URI"]:
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives a
            # crash of the process (SIGKILL included); only a power cut may lose the last few,
            # which for the outcome recorder means a re-send, never a lost message.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def register_proxy_fix(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies, the visitor's address and scheme come from
    their ``X-Forwarded-For``/``-Proto`` (issue 11); with none, those headers are ignored."""
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]


def register_blueprints(app: Flask) -> None:
    from .web import register_web

    register_web(app)


def register_commands(app: Flask) -> None:
    from .cli import register_cli

    register_cli(app)
