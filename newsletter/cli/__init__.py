"""Flask commands: ``worker``, ``staff``, ``releases``, ``digests``. Each module adds its own."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    from . import digests, releases, staff, worker

    for module in (worker, staff, releases, digests):
        module.register(app)

    # Outgoing deliverability (issue 12): DKIM keys, mail audit.
    from . import dkim, mail

    dkim.register(app)
    mail.register(app)
