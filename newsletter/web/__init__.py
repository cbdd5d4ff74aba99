"""HTTP: blueprints parse input, call the domain (through delivery for mail), answer."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    from . import api, errors, health, public, security

    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(public.blueprint)
    app.register_blueprint(api.blueprint)
    _register_optional(app)


def _register_optional(app: Flask) -> None:
    """Blueprints of the accounts and staff capabilities, registered when present."""
    import importlib

    for module_name in ("accounts", "admin", "api_staff"):
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        module.init_app(app)
