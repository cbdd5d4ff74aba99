"""Language of pages: chosen by the visitor (kept in the session), else the account's,
else ``Accept-Language``, else French."""

from __future__ import annotations

from flask import Flask, g, request, session
from flask_babel import refresh
from flask_login import current_user

from ..config import DEFAULT_LANGUAGE, LANGUAGES
from ..extensions import babel


def select_language() -> str:
    # Public archive pages carry their language in the URL (/fr/..., /en/...). It wins, and
    # the session is not read or written, so those pages set no cookie and cache for everyone.
    if g.get("url_language") in LANGUAGES:
        return g.url_language
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    if g.get("page_language") in LANGUAGES:
        return g.page_language
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def use_language_of(language: str | None) -> None:
    """Pages reached from an email speak the recipient's language unless the visitor chose."""
    g.page_language = language
    refresh()


def request_language(default: str | None = None) -> str:
    """Language for a new subscriber or account when the form does not say."""
    return request.accept_languages.best_match(LANGUAGES) or default or DEFAULT_LANGUAGE


def init_babel(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_language)
    # Domain messages (``domain.wording``) are English until a page says them.
    from .inputs import say

    app.jinja_env.filters["say"] = say

    @app.context_processor
    def language_links():
        from flask_babel import get_locale

        return {"current_language": str(get_locale()), "languages": LANGUAGES}
