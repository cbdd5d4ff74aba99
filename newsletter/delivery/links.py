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


_TOKEN_PLACEHOLDER = "TOKENSLOT"  # noqa: S105 - a placeholder, not a secret


def token_url(endpoint: str, token: str) -> str:
    """``public_url_for(endpoint, token=token)`` for a URL-safe token, at the cost of a string
    concatenation: each endpoint's URL is built once per app around a placeholder."""
    patterns = current_app.extensions.setdefault("newsletter.token_urls", {})
    pattern = patterns.get(endpoint)
    if pattern is None:
        url = public_url_for(endpoint, token=_TOKEN_PLACEHOLDER)
        prefix, _, suffix = url.partition(_TOKEN_PLACEHOLDER)
        pattern = patterns[endpoint] = (prefix, suffix)
    return pattern[0] + token + pattern[1]


def release_page_url(release_id: int, language: str, title: str) -> str:
    """The public page of a release, as linked from digests, feeds and the sitemap."""
    from ..domain.archive import slugify

    return public_url_for(
        "archive.release", language=language, release_id=release_id, slug=slugify(title)
    )


def digest_page_url(digest_id: int, language: str) -> str:
    """The web version of a digest ("view in your browser"): the same for every recipient."""
    return public_url_for("archive.digest", language=language, digest_id=digest_id)
