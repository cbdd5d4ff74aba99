"""Flask commands: ``worker``, ``staff``, ``releases``, ``digests``. Each module adds its own."""

from __future__ import annotations

import importlib

from flask import Flask


def register_cli(app: Flask) -> None:
    for module_name in ("worker", "staff", "releases", "digests"):
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        module.register(app)
