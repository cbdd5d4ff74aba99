"""Issue 11, finding 7: production mode sets Secure cookies and HSTS and refuses short keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_settings

LONG_KEY = "k" * 48


def production(**env) -> dict:
    return load_settings(
        Path("/nonexistent"),
        {"NEWSLETTER_ENV": "production", "NEWSLETTER_SECRET_KEY": LONG_KEY, **env},
    )


@pytest.mark.parametrize("key", ["x", "short-key", "k" * 31])
def test_a_short_secret_key_is_refused_in_production(key):
    with pytest.raises(RuntimeError, match="32"):
        production(NEWSLETTER_SECRET_KEY=key)


def test_production_cookies_are_secure_whatever_the_public_url():
    settings = production(NEWSLETTER_PUBLIC_URL="http://news.example.org")
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["REMEMBER_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True


def test_production_answers_carry_hsts(make_app):
    application = make_app(DEVELOPMENT=False)
    response = application.test_client().get("/subscribe")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    development = make_app(DEVELOPMENT=True).test_client().get("/subscribe")
    assert "Strict-Transport-Security" not in development.headers


def test_the_readme_production_recipe_sets_production_mode():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Production", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "NEWSLETTER_ENV=production",
        "NEWSLETTER_SECRET_KEY",
        "NEWSLETTER_RATELIMIT_STORAGE_URI=redis://",
        "NEWSLETTER_TRUSTED_PROXIES",
        "NEWSLETTER_PUBLIC_URL=https://",
    ):
        assert needed in section, needed
