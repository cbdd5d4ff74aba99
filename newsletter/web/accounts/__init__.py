"""Account pages and the ``/api/v1/account`` JSON routes.

Views parse input, call the domain (accounts, codes, passwords), queue mail through delivery,
commit, and map outcomes to pages or JSON. What a visitor sees never says whether an address
has an account: registering a taken address and asking a reset code for an unknown one answer
exactly like the ordinary case.
"""

from __future__ import annotations

from flask import Flask

# Importing the flows registers their routes on the one ``accounts`` blueprint.
from . import login, profile, registration, reset  # noqa: F401
from .common import blueprint, failed_login, login_rate_limit, safe_next

__all__ = ["blueprint", "failed_login", "init_app", "login_rate_limit", "safe_next"]


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
