"""Absolute links for emails, built from ``NEWSLETTER_PUBLIC_URL`` and never from a request.

The request's Host header is attacker-controlled; emailed links must not depend on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app


def public_url_for(endpoint: str, **values: Any) -> str:
    """``url_for`` against the configured public URL, usable outside any request."""
    public = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(
        public.netloc, script_name=public.path or "/", url_scheme=public.scheme or "https"
    )
    return adapter.build(endpoint, values, force_external=True)
