"""HTTP: blueprints parse input, call the domain (through delivery for mail), answer."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    from . import (
        accounts,
        admin,
        api,
        api_staff,
        archive,
        errors,
        health,
        metrics,
        public,
        request_log,
        security,
        staff_console,
        two_factor,
    )

    request_log.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(public.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(archive.blueprint)
    accounts.init_app(app)
    admin.init_app(app)
    api_staff.init_app(app)
    # Feedback loop (issue 12): provider webhooks.
    from . import webhooks

    webhooks.init_app(app)
    staff_console.init_app(app)
    two_factor.init_app(app)
