"""The staff console (``/admin``), one module per area: dashboard, subscribers, imports,
releases, digests, webhooks; what the areas share is in ``console`` (blueprints, labels,
paging, downloads) and ``forms`` (times typed in a time zone).

The staff members, tokens and audit log pages are in ``web/staff_console.py``, the
suppression list and inbound mail in ``web/feedback_console.py``; they hang on the blueprints
defined here.
"""

from __future__ import annotations

from flask import Flask

# The areas register their routes on the blueprints when imported.
from . import dashboard, digests, forms, imports, releases, subscribers, webhooks  # noqa: F401

# What web/two_factor.py hangs its console page on.
from .console import blueprint, console_helpers, refuse_json_bodies  # noqa: F401


def init_app(app: Flask) -> None:
    """Register the console; the login page (``accounts.login``) lives with accounts, and the
    staff blueprint is registered by ``staff_console``."""
    from .. import feedback_console  # noqa: F401 - adds the feedback loop's pages (issue 12)

    app.register_blueprint(blueprint)
