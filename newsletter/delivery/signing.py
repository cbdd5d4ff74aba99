"""The application's token signer, built from its configured keys."""

from __future__ import annotations

from flask import current_app

from ..domain.tokens import TokenSigner


def app_signer() -> TokenSigner:
    config = current_app.config
    return TokenSigner(config["SECRET_KEY"], config.get("SECRET_KEY_FALLBACKS") or [])
