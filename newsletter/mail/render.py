"""Render emails from ``templates/emails/`` without a request: plain text + inlined HTML.

Each email is a ``name.txt`` + ``name.html`` pair translated with Babel catalogs; the text
template sets ``subject`` at top level.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..config import EMAIL_TEMPLATES_DIR, LANGUAGES, TRANSLATIONS_DIR
from .formatting import format_date


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str


@lru_cache(maxsize=len(LANGUAGES) + 1)
def _environment(language: str, templates_dir: Path = EMAIL_TEMPLATES_DIR) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    translations = Translations.load(str(TRANSLATIONS_DIR), [language])
    env.install_gettext_translations(translations, newstyle=True)
    env.globals["language"] = language
    env.filters["date"] = lambda value, fmt="long": format_date(value, language, fmt)
    return env


# Inlining costs far more than rendering; one inliner is reused (it is thread-safe).
_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def render_email(template: str, language: str, /, **context: Any) -> RenderedEmail:
    """Render ``<template>.txt`` and ``<template>.html`` in ``language``, CSS inlined."""
    if language not in LANGUAGES:
        language = LANGUAGES[0]
    env = _environment(language)
    text_template = env.get_template(f"{template}.txt")
    text_module = text_template.make_module(context)
    subject = " ".join(str(getattr(text_module, "subject", "")).split())
    text = str(text_module)
    html = env.get_template(f"{template}.html").render(subject=subject, **context)
    return RenderedEmail(subject=subject, text=text, html=_inliner.inline(html), language=language)
