"""Structured logs: with ``NEWSLETTER_LOG_FORMAT=json``, one JSON object per line, carrying the
request id, digest id and delivery id of the work in hand. Imports nothing of ours.

The ids travel in context variables (``log_context``) or a call's ``extra``; secrets never
travel at all, and ``redact`` is the safety net for ones that slip into a message (a signed
token in a URL, a bearer token, a ``password=`` or ``code=`` pair).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "digest_id", "delivery_id")
_context: dict[str, ContextVar[object | None]] = {
    name: ContextVar(f"newsletter_{name}", default=None) for name in CONTEXT_FIELDS
}

# itsdangerous tokens (payload.timestamp.signature), bearer tokens, and key=value secrets.
_SECRETS = (
    (re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}"), "[token]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[token]"),
    (re.compile(r"(?i)\b(password|passwd|code|token|secret)(\s*[=:]\s*)\S+"), r"\1\2[redacted]"),
    (re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),  # user:password@ in URLs
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Every log line inside carries these ids (``request_id``, ``digest_id``, ``delivery_id``)."""
    tokens = [(_context[name], _context[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def set_request_id(request_id: str | None) -> None:
    """For request hooks, which cannot wrap the request in a ``with``."""
    _context["request_id"].set(request_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = _context[name].get()
            if value is not None:
                entry[name] = value
        for name in ("method", "route", "status", "duration_ms", "remote_addr"):
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_text_logging(level: int = logging.INFO) -> None:
    """Plain lines on stderr for a long-running command (the worker) when nothing else set
    logging up: without it Python shows warnings only, and progress lines would be lost."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("newsletter").setLevel(level)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """JSON lines on stderr for ``json``; anything else leaves logging as it was."""
    if log_format != "json":
        return
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "newsletter_json", False):
            return  # once per process, however many apps are built
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.newsletter_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Ours at ``level``; libraries (alembic, APScheduler...) only when something goes wrong.
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("newsletter").setLevel(level)
