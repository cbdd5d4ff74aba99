"""The bounce mailbox poller: ``NEWSLETTER_BOUNCE_MAILBOX_URL=imap(s)://user:pass@host[:port]/FOLDER``
(``?cafile=/path/ca.pem`` to trust a private CA over imaps, as ``MAIL_URL`` takes it).

Each message is fetched, stored (committed) and processed by the one processor, and only then
moved to ``BOUNCE_MAILBOX_DONE_FOLDER``: a crash in between leaves it in the folder, to be read
again (at least once, never lost). stdlib ``imaplib`` only.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import BOUNCE_MAILBOX_DONE_FOLDER, IMAP_TIMEOUT_SECONDS, INBOUND_MAX_MESSAGE_BYTES
from .processor import receive

log = logging.getLogger(__name__)

_UID_RE = re.compile(rb"UID (\d+)")


class MailboxUrlError(ValueError):
    """The bounce mailbox URL cannot be used."""


@dataclass(frozen=True)
class MailboxSettings:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str
    # A CA bundle to verify the server's certificate with instead of the system's.
    cafile: str | None = None


# Query keys the URL may carry; anything else is a mistake worth refusing.
_QUERY_KEYS = {"cafile"}


def parse_mailbox_url(url: str) -> MailboxSettings:
    """``imap://`` (port 143) or ``imaps://`` (port 993) with user, password and folder;
    ``?cafile=`` names a CA bundle to trust (a private CA, a test's self-signed certificate)."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise MailboxUrlError("expected imap://user:pass@host[:port]/FOLDER or imaps://...")
    if not parts.username or parts.password is None:
        raise MailboxUrlError("the bounce mailbox URL needs a user and a password")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - _QUERY_KEYS:
        raise MailboxUrlError(f"unknown bounce mailbox URL option(s): {sorted(set(query))}")
    secure = parts.scheme == "imaps"
    return MailboxSettings(
        secure=secure,
        host=parts.hostname,
        port=parts.port or (993 if secure else 143),
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        cafile=(query.get("cafile") or [""])[0] or None,
    )


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _connect(settings: MailboxSettings) -> imaplib.IMAP4:
    if settings.secure:
        return imaplib.IMAP4_SSL(
            settings.host,
            settings.port,
            ssl_context=ssl.create_default_context(cafile=settings.cafile),
            timeout=IMAP_TIMEOUT_SECONDS,
        )
    return imaplib.IMAP4(settings.host, settings.port, timeout=IMAP_TIMEOUT_SECONDS)


def _check(response: tuple[str, list], what: str) -> list:
    status, data = response
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what}: {status} {data!r}")
    return data


def poll_bounce_mailbox(url: str, limit: int = 500) -> int:
    """Fetch, store, process and move up to ``limit`` messages; returns how many were handled.

    Call within an app context. IMAP errors propagate (the job logs them and tries next time).
    """
    settings = parse_mailbox_url(url)
    handled = 0
    client = _connect(settings)
    try:
        _check(client.login(settings.user, settings.password), "LOGIN")
        # The folder for handled mail; "already exists" is the usual answer and is fine.
        client.create(_quoted(BOUNCE_MAILBOX_DONE_FOLDER))
        _check(client.select(_quoted(settings.folder)), "SELECT")
        data = _check(client.uid("SEARCH", None, "UNDELETED"), "SEARCH")
        uids = (data[0] or b"").split()[:limit]
        can_move = "MOVE" in client.capabilities
        for uid in uids:
            fetched = _check(client.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH")
            raw = next(
                (item[1] for item in fetched if isinstance(item, tuple) and len(item) == 2),
                None,
            )
            if raw is None:
                continue
            receive("imap", bytes(raw[:INBOUND_MAX_MESSAGE_BYTES]))
            # Stored and processed: only now may it leave the folder.
            if can_move:
                _check(client.uid("MOVE", uid, _quoted(BOUNCE_MAILBOX_DONE_FOLDER)), "MOVE")
            else:
                _check(client.uid("COPY", uid, _quoted(BOUNCE_MAILBOX_DONE_FOLDER)), "COPY")
                _check(client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
            handled += 1
        if not can_move and handled:
            client.expunge()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            log.debug("IMAP logout failed", exc_info=True)
    return handled
